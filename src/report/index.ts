// The report pipeline's public API: result format, registry, runner and writers.

export type { Cell, Row, Plot, ExperimentResult, ExperimentOutput } from './result.js';
export { validateResult, dataNames } from './result.js';
export {
  registerExperiment, unregisterExperiment, getExperiment, listExperiments,
  setDefaultScenario, getDefaultScenario, parseExperimentScenario, scenarioConfig,
  type ExperimentDefinition, type RunContext, type ParsedScenario,
} from '../experiment/registry.js';
export { runScenario, runExperiment, withSeed, RunAborted, type RunOptions } from '../experiment/runner.js';
export { writeReport, renderReport, commitDirectory, checkReplaceable, type WriteOptions, type WrittenReport } from './write.js';
export { renderPlotSvg, scopeIds, type RenderOptions } from './render.js';
export { renderHtml, escapeHtml, type HtmlOptions } from './html.js';
export { toCsv, csvField, columns } from './csv.js';
