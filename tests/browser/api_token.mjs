// An admin makes an API token on the tokens page; the test then uses it over the
// API. Also visits the staff page and the audit chain's status.
import { axe, check, input, open, result, run, shot, signIn, submit } from './lib.mjs';

await run(async (page) => {
  await signIn(page, input.email, input.password);
  await open(page, '/console/admin/tokens');
  await axe(page, 'tokens');
  await page.fill('#token-name', 'shop (from the browser)');
  await page.selectOption('#token-role', 'vendor');
  await submit(page, 'form.stack button[type=submit]');
  const secret = await page.inputValue('#shown-secret');
  check(/^kc_[0-9a-z]{52}$/.test(secret), `the secret is shown once: ${secret}`);
  await axe(page, 'token made');
  // The secret on the screenshot is a test server's, gone with it.
  await shot(page, 'token-made', 'console-token');
  await open(page, '/console/admin/tokens');
  check(!(await page.content()).includes(secret), 'the secret is not shown again');
  check((await page.textContent('table')).includes('shop (from the browser)'), 'the token is listed');
  await open(page, '/console/admin/users');
  await axe(page, 'staff');
  await open(page, '/console/admin/audit');
  check((await page.textContent('main')).includes('Verified'), 'the chain verifies');
  await axe(page, 'audit');
  await shot(page, 'audit');
  result({ secret });
});
