// The browser build's node:path: join, as the swap file uses it.
export const join = (...parts: string[]): string => parts.join('/').replace(/\/+/g, '/');
export default { join };
