// An admin made by `keyclerk users create` opens the setup link, sets a password,
// enrols an authenticator (the key read from the page), signs out, and signs in
// again with the password and a code.
import { axe, base, check, here, input, open, run, shot, signIn, signOut, submit, totp } from './lib.mjs';

await run(async (page) => {
  await open(page, new URL(input.setup_link).pathname);
  check((await page.textContent('h1')).includes(input.email), 'the setup page names the account');
  await axe(page, 'setup');
  await shot(page, 'setup', 'console-setup');
  const key = (await page.textContent('code.key')).trim();
  check(/^[A-Z2-7]{32}$/.test(key), `a base32 key on the page: ${key}`);
  check(await page.locator('.qr svg').count() === 1, 'a QR code');
  await page.fill('#password', input.password);
  await page.fill('#password2', input.password);
  await page.fill('#totp', totp(key));
  await submit(page, 'form.stack button[type=submit]');
  check(here(page) === '/console', `signed in after setup, at ${page.url()}`);
  await axe(page, 'search');
  await signOut(page);
  // The used link is gone.
  const again = await page.goto(input.setup_link.replace(/^https?:\/\/[^/]+/, base));
  check(again.status() === 404, `a used setup link answers 404, not ${again.status()}`);
  await axe(page, 'setup link gone');
  // Without the code, signing in is refused; with the next step's code it works
  // (the step the setup used is spent; the server allows one step ahead).
  await open(page, '/console/login');
  await page.fill('#email', input.email);
  await page.fill('#password', input.password);
  await submit(page, 'form.stack button[type=submit]');
  check(here(page) === '/console/login', 'refused without the code');
  check((await page.textContent('.error')).includes('not right'), 'says what is wrong');
  await axe(page, 'sign-in refused');
  await shot(page, 'refused');
  await signIn(page, input.email, input.password, totp(key, 1));
  await shot(page, 'signed-in', 'console-signin');
  // The session cookie is __Host-, Secure, HttpOnly, Strict, and the browser kept it.
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === '__Host-keyclerk_console');
  check(session && session.secure && session.httpOnly && session.sameSite === 'Strict' && session.path === '/',
    `the session cookie: ${JSON.stringify(cookies)}`);
  check(await page.evaluate(() => document.cookie) === '', 'scripts cannot read the cookie');
});
