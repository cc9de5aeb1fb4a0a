// A lost machine deactivated from the license page, with a reason, through the
// confirmation page; the history says who did it.
import { axe, check, input, phone, run, shot, signIn, submit, text } from './lib.mjs';

await run(async (page) => {
  await signIn(page, input.email, input.password);
  // An order id is one hit: the search opens the license.
  await page.fill('#q', input.order_id);
  await submit(page, '#search button[type=submit]');
  check(page.url().endsWith(`/console/licenses/${input.license}`), `the license opened: ${page.url()}`);
  const live = () => page.locator('#machines a[id^="deactivate-"]').count();
  check(await live() === 2, 'two machines hold a seat');
  check((await text(page, 'main')).includes('2 of 3 in use'), 'two seats of three');
  await axe(page, 'license');
  await shot(page, 'license');
  await phone(page, 'license');

  await submit(page, `#deactivate-${input.lost}`);
  check((await text(page, 'h1')).includes('deactivate'), `the confirm page: ${await text(page, 'h1')}`);
  check((await text(page, 'main')).includes(input.lost_name), 'the confirm page names the machine');
  check(await page.locator('#confirm-action #password').count() === 0, 'no password to free a seat');
  await axe(page, 'confirm deactivate');
  await shot(page, 'confirm');
  await page.fill('#reason', input.reason);
  await submit(page, '#confirm-action button[type=submit]');

  check(page.url().includes(`/console/licenses/${input.license}`), `back on the license: ${page.url()}`);
  check((await text(page, '#notice')).includes('deactivated'), `says what was done: ${await text(page, '#notice')}`);
  check(await live() === 1, 'one machine holds a seat');
  check(await page.locator(`#deactivate-${input.kept}`).count() === 1, 'the other machine kept its seat');
  check((await text(page, 'main')).includes('1 of 3 in use'), 'one seat of three');
  const history = await page.locator('#history li').allTextContents();
  const line = history.map((h) => h.replace(/\s+/g, ' ')).find((h) => h.includes(`Machine ${input.lost} was deactivated`));
  check(line && line.includes(`user:${input.email}`) && line.includes(input.reason), `the history line by the agent: ${history.join('\n')}`);
  await axe(page, 'license after');
  await shot(page, 'after');
});
