// Guest OS boards the toy-OS panel can boot (see os.ts). Empty until src/board/os-machine.ts
// is on main; then: export const OS_BOARDS = [() => import('./os-board.js').then((m) => m.create())].
import type { OsBoardFactory } from './os.js';
export const OS_BOARDS: OsBoardFactory[] = [];
