// The browser build's node:os: a temporary directory name for the in-memory swap file.
export const tmpdir = (): string => '/tmp';
export default { tmpdir };
