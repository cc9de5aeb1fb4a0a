// The customer page: a buyer of 400 days ago signs in with the key, files the late
// claim on the page, and the policy grants it at once; axe on every page.
import { axe, check, input, open, run, shot, submit, text } from './lib.mjs';

await run(async (page) => {
  await open(page, '/my');
  await page.fill('#key', input.key);
  await submit(page, '#key ~ button[type=submit]');
  check((await text(page, 'main')).includes('The activation window has closed'), `the claim form: ${await text(page, 'main')}`);
  await axe(page, 'my late license');
  await shot(page, 'claim', 'my-claim');
  await page.fill('textarea[name=message]', 'I was travelling all year.');
  await submit(page, 'section.claim button[type=submit]');
  check((await text(page, 'h1')).includes('Your license works again'), `granted: ${await text(page, 'main')}`);
  await axe(page, 'my claim granted');
  await submit(page, 'main a[href="/my"]');
  check(!(await text(page, 'main')).includes('The activation window has closed'), 'no claim form now');
  check((await text(page, 'main')).includes('granted at once'), 'the decision is listed');
  await axe(page, 'my after claim');
});
