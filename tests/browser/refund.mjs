// A refund asks for the password again: a session that has not given it within
// `[console] reauth_minutes` (signing in does not count) is asked; a wrong one is
// refused with what to do, the right one refunds.
import { axe, check, here, input, run, shot, signIn, submit, text } from './lib.mjs';

await run(async (page) => {
  await signIn(page, input.email, input.password);
  await page.fill('#q', input.license);
  await submit(page, '#search button[type=submit]');
  check(here(page) === `/console/licenses/${input.license}`, `the license opened: ${page.url()}`);
  check((await text(page, '#status')) === 'active', 'active before');
  await submit(page, '#action-refund');
  check(await page.locator('#confirm-action #password').count() === 1, 'the password asked');
  await axe(page, 'confirm refund');
  await shot(page, 'confirm');
  await page.fill('#reason', input.reason);
  await page.fill('#password', 'not my password at all');
  await submit(page, '#confirm-action button[type=submit]');
  const error = await text(page, '#form-error');
  check(error.includes('not right'), `a wrong password refused with what to do: ${error}`);
  check((await page.inputValue('#reason')) === input.reason, 'the reason kept');
  check(await page.locator('#confirm-action #password').count() === 1, 'asked again');
  await axe(page, 'refund refused');
  await shot(page, 'wrong-password');
  await page.fill('#password', input.password);
  await submit(page, '#confirm-action button[type=submit]');
  check(here(page) === `/console/licenses/${input.license}`, `back on the license: ${page.url()}`);
  check((await text(page, '#status')) === 'refunded', `refunded: ${await text(page, '#status')}`);
  check((await text(page, '#notice')).includes('refunded'), 'says what was done');
  const history = await text(page, '#history');
  check(history.includes(`user:${input.email}`), `the refund by the agent: ${history}`);
  await axe(page, 'license refunded');
  await shot(page, 'refunded');
});
