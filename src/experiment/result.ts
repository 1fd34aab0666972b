// What the paper experiments return and receive: the report layer's types (src/report).
export type { ExperimentOutput, ExperimentResult, Plot, Row } from '../report/result.js';
import type { RunContext } from './registry.js';
/** The part of the runner's context an experiment uses. */
export type ExperimentContext = Pick<RunContext, 'seed' | 'progress'>;
