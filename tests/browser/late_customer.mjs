// The one-year-later customer: an agent signs in with a password and an
// authenticator code, finds the customer by email, reads the late-claim evidence,
// previews an extension and grants it. The Rust test then activates the key.
import { axe, check, here, input, open, phone, result, run, shot, signIn, submit, text, totp } from './lib.mjs';

await run(async (page) => {
  // The step the setup used is spent; the next one is within the drift allowed.
  await signIn(page, input.email, input.password, totp(input.totp_key, 1));
  await axe(page, 'search');
  // The search by keyboard alone: the box has the focus, typing and Enter send it.
  check(await page.evaluate(() => document.activeElement.id === 'q'), 'the search box has the focus');
  await page.keyboard.type(input.customer);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  check(here(page) === '/console/search', `several licenses are listed, at ${page.url()}`);
  check(await page.locator('#results tbody tr').count() === 2, 'both licenses of the customer');
  check(await page.locator('#customer').count() === 1, 'a link to the customer page');
  await axe(page, 'results');
  await shot(page, 'results');
  // The license by keyboard alone: the first Tab reaches the skip link, and its
  // focus shows; Tabs then reach the license's link, and Enter opens it.
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.classList.contains('skip')),
    'the first Tab reaches the skip link');
  check(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none'),
    'the focused link shows its focus');
  const target = `/console/licenses/${input.license}`;
  for (let tabs = 0; ; tabs += 1) {
    check(tabs <= 40, `the license's link is reached with Tab`);
    if (await page.evaluate((t) => document.activeElement.getAttribute('href') === t, target)) { break; }
    await page.keyboard.press('Tab');
  }
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  check(here(page) === target, `Enter opened the license: ${page.url()}`);

  // The evidence beside the remedies.
  check(await page.locator('#late-claim').count() === 1, 'the late-claim panel');
  const evidence = await text(page, '#late-claim .evidence');
  check(evidence.includes(`Days late ${input.days_late}`), `${input.days_late} days late: ${evidence}`);
  check(evidence.includes('Ever activated no'), `never activated: ${evidence}`);
  check(evidence.includes('Downloads never'), `never downloaded: ${evidence}`);
  const refused = await text(page, '#late-claim table');
  check(refused.includes('Refused activations') && refused.includes(input.refused_code),
    `the refused attempt with its code: ${refused}`);
  for (const r of ['extend', 'substitute', 'upgrade', 'credit', 'refund', 'decline']) {
    check(await page.locator(`#remedy-${r}`).count() === 1, `the ${r} remedy`);
  }
  check(await page.locator(`#customer[href="/console/customers/${encodeURIComponent(input.customer)}"]`).count() === 1,
    'the email leads to the customer page');
  await axe(page, 'late claim');
  await shot(page, 'late-claim', 'console-late-claim');
  await phone(page, 'late-claim');

  // Extend: the preview shows the new deadline before anything changes.
  await submit(page, '#remedy-extend');
  check((await text(page, 'h1')).includes('Extend'), `the extend preview: ${await text(page, 'h1')}`);
  check((await text(page, '#new-deadline')).includes('days left'), 'a new deadline');
  await page.fill('#preview-days-input', '30');
  await submit(page, '#preview-days button[type=submit]');
  const deadline = await text(page, '#new-deadline');
  check(deadline.includes('30 days left'), `the new deadline of 30 days: ${deadline}`);
  check(await page.locator('#confirm-remedy #password').count() === 0, 'no password for an extension');
  await axe(page, 'extend preview');
  await shot(page, 'extend-preview', 'console-extend-preview');
  await phone(page, 'extend-preview');
  await page.fill('#reason', 'Bought a year ago and never installed; the window closed before they came back.');
  await submit(page, '#confirm-remedy button[type=submit]');

  // The decision: what was made.
  check((await text(page, 'h1')) === 'Decided: extend', `the decision page: ${await text(page, 'h1')}`);
  const decision = await text(page, '#decision');
  check(decision.includes('New deadline') && decision.includes('30 days left'), `the new deadline: ${decision}`);
  const key = (await page.inputValue('#license-key')).trim();
  check(key.length > 0, 'the key the customer uses');
  await axe(page, 'decision');
  await shot(page, 'decision', 'console-decision');
  await phone(page, 'decision');

  // The license page: active, the panel gone, the decision in the history by the agent.
  await open(page, `/console/licenses/${input.license}`);
  check((await text(page, '#status')) === 'active', 'still active');
  check(await page.locator('#late-claim').count() === 0, 'the window is open again');
  const history = await text(page, '#history');
  check(history.includes(`user:${input.email}`) && history.includes('Late claim decided'),
    `the decision in the history by the agent: ${history}`);
  await axe(page, 'license after');
  result({ key });
});
