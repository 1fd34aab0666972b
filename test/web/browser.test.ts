// The browser page in a real Chromium (Debian's, driven by playwright-core): the built page
// (web/dist, rebuilt when a source is newer) served on localhost; a walk whose decoded result
// must equal the library's own answer for the same state; Figure 7 run in the page's worker,
// whose plot must appear with the final allocations the library computes in Node; no console
// errors and no request leaving the page. Screenshots go to test-artifacts/web (gitignored).
//
// Chromium comes from .ci/run (apt-get install chromium); MEMVISOR_CHROMIUM overrides the
// path. Without it these tests are reported as skipped, with the reason printed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { WalkLab, LAB_ADDRESSES, DEFAULT_LAB } from '../../src/board/walk-lab.js';
import { serveDir, WEB_DIST } from '../../src/cli/serve.js';
import { execFile } from 'node:child_process';
import type { ExperimentResult } from '../../src/report/result.js';

const CHROMIUM = process.env.MEMVISOR_CHROMIUM ?? '/usr/bin/chromium';
const HAVE = existsSync(CHROMIUM);
const ARTIFACTS = 'test-artifacts/web';
/**
 * Runs a command in a child process without blocking this worker's event loop (a long
 * synchronous build or run here starves vitest's RPC and fails the run with a timeout).
 */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, fail) => execFile(cmd, args, { maxBuffer: 64 * 2 ** 20 }, (e, out, err) => (e ? fail(new Error(`${cmd} ${args.join(' ')}: ${err || e.message}`)) : ok(out))));
}
if (!HAVE) console.warn(`browser tests SKIPPED: no Chromium at ${CHROMIUM} (.ci/run installs Debian's chromium)`);

/** Newest modification time under the page's sources (so a stale web/dist is rebuilt). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'dist' || e.name === 'node_modules') continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

describe.skipIf(!HAVE)('the browser page', () => {
  let server: Server, browser: Browser, page: Page, origin: string;
  const consoleErrors: string[] = [];
  const outside: string[] = [];

  beforeAll(async () => {
    const index = join(WEB_DIST, 'index.html');
    const src = Math.max(newest('web'), newest('src'), newest('scenarios'), statSync('build/memvisor.wasm').mtimeMs);
    if (!existsSync(index) || statSync(index).mtimeMs < src) await run('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn']);
    server = await serveDir(WEB_DIST, 0);
    const a = server.address();
    origin = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) outside.push(r.url()); });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.goto(origin + '/');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
  });

  it('walks an address and shows the library\'s answer, decoded', async () => {
    const node = await WalkLab.create(DEFAULT_LAB);
    for (const label of ['user data, read', 'EPT read-only gpa, write (nested)', 'user data, read']) {
      const a = LAB_ADDRESSES.find((x) => x.label === label)!;
      const want = node.walk(a.va, a.access);
      await page.getByRole('button', { name: new RegExp(`^${label.replace(/[()]/g, '\\$&')}`) }).click();
      const res = page.locator('#w-result');
      await res.waitFor();
      if (want.result.ok) {
        expect(await res.getAttribute('data-pa')).toBe('0x' + want.result.pa.toString(16));
      } else if (want.result.fault === 'EPT_VIOLATION') {
        expect(await res.getAttribute('data-fault')).toBe('EPT_VIOLATION');
        expect(Number(await res.getAttribute('data-qualification'))).toBe(want.result.qualification);
        // The qualification spelled out: the bits the library sets are the rows marked 1.
        const set = await page.locator('#w-result table.bits tr.bit1 td:nth-child(2)').allTextContents();
        expect(set).toEqual(['write', 'readable', 'GLA valid', 'final']);
      }
      expect(await page.locator('#w-check').count()).toBe(0);
      if (want.tlbHit) expect(await page.locator('#w-served').textContent()).toContain(`${want.tlbHit} TLB hit`);
      else {
        expect(Number(await page.locator('#w-served').getAttribute('data-refs'))).toBe(want.counters.walkRefs);
        expect(await page.locator('#w-grid tr[data-ntlb]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-ntlb'))))
          .toEqual(want.rows.map((r) => r.ntlb));
      }
    }
    await page.screenshot({ path: join(ARTIFACTS, 'walk.png'), fullPage: true });
  });

  it('an uncached nested walk shows the 24-reference grid; the tabs work from the keyboard', async () => {
    await page.locator('#w-caches').uncheck();
    await page.getByRole('button', { name: /^user data, read/ }).click();
    await page.locator('#w-grid').waitFor();
    expect(await page.locator('#w-served').getAttribute('data-refs')).toBe('24');
    expect(await page.locator('#w-grid tr[data-ntlb]').count()).toBe(5);
    expect(await page.locator('#w-grid td.skip').count()).toBe(0);
    expect(await page.locator('#w-check').count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'walk-24.png'), fullPage: true });
    await page.locator('#w-caches').check();
    await page.locator('#tab-walk').focus();
    await page.keyboard.press('ArrowRight');
    expect(await page.locator('#tab-tlb').getAttribute('aria-selected')).toBe('true');
    expect(await page.locator('#panel-tlb').isVisible()).toBe(true);
    await page.locator('#t-run').click();
    await page.waitForFunction(() => Number(document.querySelector('[data-counter="accesses"]')?.textContent) > 10_000);
    await page.locator('#t-stop').click();
    expect(Number(await page.locator('.cache[data-cache="l2"]').getAttribute('data-valid'))).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, 'tlb.png'), fullPage: true });
  });

  it('runs Figure 7 in the worker and plots the allocations the library computes', async () => {
    // The library's answer for the same scenario: the CLI run in a child process.
    // Figure 7 with shorter phases (60 simulated s each, not 240), so the worker's run fits
    // the test's time; the page and the CLI run the same edited scenario.
    const out = mkdtempSync(join(tmpdir(), 'memvisor-web-fig7-'));
    const short = JSON.parse(readFileSync('scenarios/fig7-idle-tax.json', 'utf8')) as Record<string, unknown>;
    short.phaseSeconds = 60;
    const shortText = JSON.stringify(short, null, 2);
    writeFileSync(join(out, 'fig7-short.json'), shortText);
    const want = JSON.parse(await run('node', ['bin/memvisor.mjs', 'run', join(out, 'fig7-short.json'), '--json', '--quiet', '--out', join(out, 'report')])) as ExperimentResult;
    rmSync(out, { recursive: true, force: true });
    await page.locator('#tab-exp').click();
    expect(await page.locator('#e-pick').inputValue()).toBe('fig7-idle-tax');
    // An edit the schema refuses: the message names the field and the run is disabled.
    const text = await page.locator('#e-text').inputValue();
    await page.locator('#e-text').fill(text.replace('"vmMiB": 16', '"vmMiB": 2'));
    expect(await page.locator('#e-errors').textContent()).toMatch(/vmMiB/);
    expect(await page.locator('#e-run').isDisabled()).toBe(true);
    await page.locator('#e-text').fill(shortText);
    expect(await page.locator('#e-errors').textContent()).toBe('');
    await page.locator('#e-run').click();
    await page.locator('#e-out[data-state="done"], #e-out[data-state="error"]').waitFor({ state: 'attached', timeout: 100_000 });
    expect(await page.locator('#e-errors').textContent()).toBe('');
    expect(await page.locator('#e-out').getAttribute('data-state')).toBe('done');
    for (const [k, v] of Object.entries(want.summary)) {
      if (!/at end of τ/.test(k)) continue;
      expect(await page.locator(`#e-summary td[data-key="${k}"]`).textContent(), k).toBe(String(v));
    }
    const plot = page.locator('[data-plot="fig7-allocation"][data-rendered="true"] svg');
    await plot.waitFor();
    // One solid and one dashed line per VM.
    expect(await plot.locator('path[aria-roledescription="line mark"], g.mark-line path').count()).toBeGreaterThanOrEqual(4);
    await page.screenshot({ path: join(ARTIFACTS, 'experiments.png'), fullPage: true });
  }, 120_000);

  it('runs the shipped C OS under the memory manager in the worker, as the CLI does', async () => {
    // os-guests boots the bundled kernel (the worker fetches it); two guests for 3 virtual
    // seconds, so the run fits the test. The page and the CLI run the same edited scenario.
    const out = mkdtempSync(join(tmpdir(), 'memvisor-web-os-'));
    const short = JSON.parse(readFileSync('scenarios/os-guests.json', 'utf8')) as { guests: unknown[]; seconds: number };
    short.guests = short.guests.slice(0, 2);
    short.seconds = 3;
    const shortText = JSON.stringify(short, null, 2);
    writeFileSync(join(out, 'os-short.json'), shortText);
    const want = JSON.parse(await run('node', ['bin/memvisor.mjs', 'run', join(out, 'os-short.json'), '--json', '--quiet', '--out', join(out, 'report')])) as ExperimentResult;
    rmSync(out, { recursive: true, force: true });
    await page.locator('#tab-exp').click();
    await page.locator('#e-pick').selectOption('os-guests');
    await page.locator('#e-text').fill(shortText);
    await page.locator('#e-run').click();
    await page.locator('#e-out[data-state="done"], #e-out[data-state="error"]').waitFor({ state: 'attached', timeout: 100_000 });
    expect(await page.locator('#e-errors').textContent()).toBe('');
    expect(want.summary['checksum lines verified']).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(want.summary)) {
      expect(await page.locator(`#e-summary td[data-key="${k}"]`).textContent(), k).toBe(String(v));
    }
  }, 120_000);

  it('shadow mode: the hidden fault, the shadow MMU\'s guest walk, then the library\'s answer', async () => {
    const node = await WalkLab.create({ ...DEFAULT_LAB, mode: 'shadow' });
    const a = LAB_ADDRESSES[0];
    const want = node.walk(a.va, a.access);
    await page.locator('#tab-walk').click();
    await page.locator('#w-mode').selectOption('shadow');
    await page.getByRole('button', { name: /^user data, read/ }).click();
    await page.locator('#w-shadow').waitFor();
    expect(await page.locator('#w-shadow').getAttribute('data-outcome')).toBe(want.shadow!.outcome.action);
    expect(await page.locator('#w-result').getAttribute('data-pa')).toBe('0x' + (want.result as { pa: bigint }).pa.toString(16));
    expect(await page.locator('#w-shadow-guest tr[data-ntlb]').count()).toBe(want.shadow!.guest.rows.length);
    expect(await page.locator('#w-check').count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'walk-shadow.png'), fullPage: true });
  });

  it('boots a kernel ELF in the toy-OS panel and shows its console (skipped without gcc)', async (ctx) => {
    let elf: string;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'memvisor-web-kernel-'));
      elf = join(dir, 'hello.elf');
      execFileSync('gcc', ['-nostdlib', '-static', '-no-pie', '-Wl,-z,max-page-size=0x1000', '-Wl,--build-id=none',
        '-T', 'test/board/fixtures/hello.ld', '-o', elf, 'test/board/fixtures/hello.S'], { stdio: 'pipe' });
    } catch {
      console.warn('toy-OS browser test SKIPPED: gcc could not build test/board/fixtures/hello.S');
      ctx.skip();
      return;
    }
    await page.locator('#tab-os').click();
    await page.locator('#os-file').setInputFiles(elf);
    await page.waitForFunction(() => (document.getElementById('os-term')?.textContent ?? '').includes('[guest stopped'), undefined, { timeout: 30_000 });
    const text = await page.locator('#os-term').textContent();
    expect(text).toContain('hello from a machine-code guest');
    expect(text).toContain('[guest stopped: power-off');
    expect(await page.locator('#os-balloon').getAttribute('max')).toBe(String(64 * 256));
    await page.screenshot({ path: join(ARTIFACTS, 'os.png'), fullPage: true });
  });

  it('logged no console errors and sent no request outside the page', () => {
    expect(consoleErrors).toEqual([]);
    expect(outside).toEqual([]);
  });
});
