// The page's stand-in for src/util/package-info.ts (Node-only: it reads package.json from
// disk and asks git): the version is bundled from package.json; a page has no clone.
import pkg from '../../package.json';
import type { GitState, PackageInfo } from '../../src/util/package-info.js';

export type { GitState, PackageInfo };

export function packageInfo(): PackageInfo { return { version: pkg.version, root: '/' }; }

export function gitState(): GitState | null { return null; }
