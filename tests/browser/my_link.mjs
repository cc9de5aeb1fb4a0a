// The customer page: a buyer asks for a sign-in link, opens it from the captured
// mail (the aiosmtpd server's directory), sees the license and deactivates an
// old machine through the confirmation step; axe on every page.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { axe, base, check, here, input, open, phone, run, shot, submit, text } from './lib.mjs';

/** The sign-in link of the first mail to arrive in the inbox directory. */
async function linkFromMail(dir) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
    for (const f of files) {
      const m = JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
      const plain = m.parts.find((p) => p.type === 'text/plain');
      const line = plain && plain.content.split('\n').map((l) => l.trim()).find((l) => l.includes('/my/link?t='));
      if (line) { return line; }
    }
    await new Promise((r) => { setTimeout(r, 50); });
  }
  return fail('no sign-in mail arrived');
}

function fail(message) { check(false, message); }

await run(async (page) => {
  await open(page, '/my');
  await axe(page, 'my sign-in');
  await shot(page, 'sign-in', 'my-sign-in');
  await page.fill('#email', input.email);
  await submit(page, '#email ~ button[type=submit]');
  check((await text(page, 'h1')).includes('Check your mailbox'), `after asking: ${await text(page, 'main')}`);
  await axe(page, 'my link sent');

  const link = await linkFromMail(input.inbox);
  check(link.startsWith(base), `an absolute link to this server: ${link}`);
  await page.goto(link);
  await axe(page, 'my link confirm');
  await submit(page, '#confirm-sign-in');
  check(here(page) === '/my', `signed in at ${page.url()}`);
  check((await text(page, 'h1')).includes(input.email), 'the licenses of the email');
  check((await text(page, 'main')).includes(input.order_id), 'the order is listed');
  const machines = () => page.locator('a[href^="/my/machines/"]').count();
  check(await machines() === 2, 'two machines hold a seat');
  await axe(page, 'my licenses');
  await shot(page, 'licenses', 'my-licenses');
  await phone(page, 'my licenses');

  // The product's file, downloaded by the browser from the page's signed link.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`ul.downloads a:has-text("${input.file}")`),
  ]);
  check(download.suggestedFilename() === input.file, `saved as ${download.suggestedFilename()}`);
  const saved = readFileSync(await download.path());
  const sha256 = createHash('sha256').update(saved).digest('hex');
  check(sha256 === input.sha256, `the file's SHA-256: ${sha256}`);

  await submit(page, `a[href="/my/machines/${input.old}/deactivate"]`);
  check((await text(page, 'main')).includes(input.old_name), 'the confirmation names the machine');
  await axe(page, 'my deactivate confirm');
  await submit(page, 'form.row button[type=submit]');
  check((await text(page, 'h1')).includes('Machine deactivated'), `after: ${await text(page, 'main')}`);
  await axe(page, 'my deactivated');
  await submit(page, 'main a[href="/my"]');
  check(await machines() === 1, 'one machine holds a seat');
  check(!(await text(page, 'main')).includes(input.old_name), 'the old machine is gone');
  await submit(page, 'form.signout button');
  check((await text(page, 'h1')).includes('Sign in'), 'signed out');
});
