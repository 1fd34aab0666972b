// The browser build's node:path: join, as the swap file uses it; resolve, relative and
// isAbsolute, as a scenario's trace path uses them (a page has no files, so a trace is then
// reported as not found).
export const join = (...parts: string[]): string => parts.join('/').replace(/\/+/g, '/');
export const isAbsolute = (p: string): boolean => p.startsWith('/');
export const resolve = (...parts: string[]): string => {
  let out = '/';
  for (const p of parts) out = isAbsolute(p) ? p : join(out, p);
  return out;
};
export const relative = (from: string, to: string): string => (to.startsWith(from.replace(/\/?$/, '/')) ? to.slice(from.replace(/\/?$/, '/').length) : to);
export default { join, isAbsolute, resolve, relative };
