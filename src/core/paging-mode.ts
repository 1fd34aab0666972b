// The paging mode of a VM and its vCPUs, one type for the whole code base (the core's
// TranslationMode): native (the guest's CR3 walked against host memory), shadow (the
// hypervisor's gVA→hPA tables) or nested (the 2D walk through the EPT).

import type { TranslationMode } from './cpu.js';

export type PagingMode = TranslationMode;
export const PAGING_MODES: readonly PagingMode[] = ['native', 'shadow', 'nested'];
