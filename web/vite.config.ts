// Builds the browser page (npm run build:web → web/dist): a static folder any host can
// serve, relative asset paths, everything bundled (the Wasm core, vega-embed), no CDN.
// The page runs the library's own modules; these Node-only imports are replaced:
//   src/core/wasm-source.ts → web/src/wasm-source.ts (fetches the bundled core),
//   src/util/package-info.ts → web/src/package-info.ts (no package.json on disk, no git),
//   node:fs / os / path / crypto → web/src/shims (the swap file keeps its slots in memory),
//   node:worker_threads → a stand-in that throws (trace files, which need Node, are reported missing).
import { defineConfig, type Plugin } from 'vite';
import { fileURLToPath } from 'node:url';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function browserCoreSource(): Plugin {
  return {
    name: 'memvisor-browser-core-source',
    enforce: 'pre',
    resolveId(source, importer) {
      if (source === './wasm-source.js' && importer?.replace(/\\/g, '/').endsWith('src/core/wasm.ts')) return here('./src/wasm-source.ts');
      if (source.endsWith('/util/package-info.js') && importer?.replace(/\\/g, '/').includes('/src/')) return here('./src/package-info.ts');
      return null;
    },
  };
}

const shims = {
  'node:fs': here('./src/shims/node-fs.ts'),
  'node:os': here('./src/shims/node-os.ts'),
  'node:path': here('./src/shims/node-path.ts'),
  'node:crypto': here('./src/shims/node-crypto.ts'),
  'node:worker_threads': here('./src/shims/node-worker-threads.ts'),
};

export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [browserCoreSource()],
  resolve: { alias: Object.entries(shims).map(([find, replacement]) => ({ find: new RegExp(`^${find}$`), replacement })) },
  worker: { format: 'es', plugins: () => [browserCoreSource()] },
  build: { outDir: here('./dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4000, assetsInlineLimit: 0 },
  server: { fs: { allow: [here('..')] } },
});
