// Shared steps of the browser flows: start chromium, sign in, TOTP codes, the axe
// check, screenshots, and the flow's result for the Rust test.
//
// A flow is `tests/browser/<flow>.mjs`, run by `tests/api/browser.rs` with:
//   KC_URL          the server, such as http://127.0.0.1:41234
//   KC_CHROMIUM     the chromium executable
//   KC_SCREENSHOTS  the directory for screenshots
//   KC_DOCS         when set, the directory the README's screenshots are copied to
//   KC_INPUT        JSON of whatever the Rust test passes (emails, links, keys)
// It exits non-zero on the first failed check; `result(value)` hands a value back.

import { createHmac } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

/** What the Rust test passed. */
export const input = JSON.parse(process.env.KC_INPUT || '{}');
/** The server's base URL. */
export const base = need('KC_URL');
const flow = path.basename(process.argv[1], '.mjs');
const shots = process.env.KC_SCREENSHOTS || 'target/screenshots';

function need(name) {
  const v = process.env[name];
  if (!v) { fail(`${name} is not set`); }
  return v;
}

/** Ends the flow as failed. */
export function fail(message) {
  console.error(`FAILED (${flow}): ${message}`);
  process.exit(1);
}

/** Fails unless `ok`. */
export function check(ok, message) {
  if (!ok) { fail(message); }
}

/** Hands `value` back to the Rust test (one line of stdout it looks for). */
export function result(value) {
  console.log(`KC_RESULT ${JSON.stringify(value)}`);
}

const visited = new Set();

/**
 * Runs `body(page)` in a fresh headless chromium, failing on a page error or a
 * Content-Security-Policy report; closes the browser whatever happens.
 */
export async function run(body) {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: need('KC_CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) { problems.push(`console: ${m.text()}`); }
    });
    await body(page);
    check(problems.length === 0, problems.join('\n'));
    console.log(`${flow}: passed in ${Date.now() - started} ms; pages checked with axe: ${[...visited].join(', ')}`);
  } catch (e) {
    fail(e && e.stack ? e.stack : String(e));
  } finally {
    await browser.close();
  }
}

/** Opens `pathname` of the server; fails unless the answer is `status`. */
export async function open(page, pathname, status = 200) {
  const res = await page.goto(base + pathname);
  check(res && res.status() === status, `${pathname}: ${res && res.status()}, not ${status}`);
  return res;
}

/** The path the page is on. */
export function here(page) {
  return new URL(page.url()).pathname;
}

/** Submits the form of `button` and waits for the next page. */
export async function submit(page, button) {
  await Promise.all([page.waitForNavigation(), page.click(button)]);
}

/** The RFC 6238 code of the base32 `secret`, `steps` 30-second steps from now. */
export function totp(secret, steps = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    check(i >= 0, `not base32: ${secret}`);
    bits += i.toString(2).padStart(5, '0');
  }
  const key = Buffer.alloc(Math.floor(bits.length / 8));
  for (let i = 0; i < key.length; i += 1) { key[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2); }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, '0');
}

/** Signs in on the sign-in page; fails unless the console's first page follows. */
export async function signIn(page, email, password, code) {
  await open(page, '/console/login');
  await axe(page, 'sign-in');
  await page.fill('#email', email);
  await page.fill('#password', password);
  if (code) { await page.fill('#totp', code); }
  await submit(page, 'form.stack button[type=submit]');
  check(here(page) === '/console', `after sign-in at ${page.url()}: ${await page.textContent('main')}`);
}

/** Signs out with the header's button; fails unless the sign-in page follows. */
export async function signOut(page) {
  await submit(page, 'form.signout button');
  check(here(page) === '/console/login', `after sign-out at ${page.url()}`);
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core on the page as it is (the source is evaluated over the DevTools
 * protocol, so the page's CSP stays as strict as ever); fails on a serious or
 * critical violation.
 */
export async function axe(page, label) {
  await page.evaluate(axeSource);
  let found = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, {
      resultTypes: ['violations'],
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return {
      passed: r.passes.length,
      violations: r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
      })),
    };
  });
  check(found.passed > 0, `axe ran no rule on ${label}`);
  visited.add(`${label} (${found.passed} rules passed, ${found.violations.length} violations)`);
  found = found.violations;
  for (const v of found) { console.log(`axe ${label}: ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`); }
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe on ${label} (${page.url()}): ${JSON.stringify(bad, null, 1)}`);
}

/**
 * A full-page screenshot `<flow>-<name>.png` in the screenshot directory; with
 * `docs` and KC_DOCS set, copied there as `<docs>.png` too (the README's).
 */
export async function shot(page, name, docs) {
  mkdirSync(shots, { recursive: true });
  const file = path.join(shots, `${flow}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (docs && process.env.KC_DOCS) {
    mkdirSync(process.env.KC_DOCS, { recursive: true });
    copyFileSync(file, path.join(process.env.KC_DOCS, `${docs}.png`));
  }
  return file;
}

/**
 * At a phone's width (390 px), fails if the page is wider than the screen (wide
 * tables scroll inside their `.scroll` box, which is allowed); runs axe there and
 * takes the screenshot `<flow>-<name>-phone.png`, then goes back to the laptop size.
 */
export async function phone(page, name) {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => ({
    px: document.documentElement.scrollWidth - window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth && !e.closest('.scroll'))
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className ? `.${e.className}` : ''}`),
  }));
  check(overflow.px <= 0, `${name}: the page is ${overflow.px} px wider than a phone: ${overflow.wide.join(', ')}`);
  await axe(page, `${name}, phone`);
  await shot(page, `${name}-phone`);
  await page.setViewportSize({ width: 1200, height: 800 });
}

/** The text of `selector`, fails if it is not on the page. */
export async function text(page, selector) {
  check(await page.locator(selector).count() > 0, `no ${selector} on ${page.url()}`);
  return (await page.locator(selector).first().textContent()).replace(/\s+/g, ' ').trim();
}
