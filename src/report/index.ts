// The report library's public API: the result format, writers, plots and tables.
// It imports nothing above it; the experiment registry and runner live in src/experiment.

export type { Cell, Row, Plot, ExperimentResult, ExperimentOutput } from './result.js';
export { validateResult, dataNames } from './result.js';
export { writeReport, renderReport, commitDirectory, checkReplaceable, checkOutputDir, checkWritableLocation, type WriteOptions, type WrittenReport } from './write.js';
export { renderPlotSvg, scopeIds, type RenderOptions } from './render.js';
export { renderHtml, escapeHtml, type HtmlOptions } from './html.js';
export { toCsv, csvField, columns } from './csv.js';
export { table } from './table.js';
