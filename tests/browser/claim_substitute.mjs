// A claim the policy left to support, resolved from the claims queue with a
// substitute: the preview lists the products it may be, the agent picks one and
// grants it; the decision shows the new key and the claim leaves the queue.
import { axe, check, input, open, phone, result, run, shot, signIn, submit, text } from './lib.mjs';

await run(async (page) => {
  await signIn(page, input.email, input.password);
  await submit(page, 'header nav a[href="/console/claims"]');
  const item = `li#claim-${input.claim}`;
  check(await page.locator(item).count() === 1, 'the claim waits in the queue');
  const claim = await text(page, item);
  check(claim.includes(input.message) && claim.includes(input.license), `its message and license: ${claim}`);
  check(claim.includes('Refused activations') || claim.includes('Days late'), `its evidence: ${claim}`);
  await axe(page, 'claims queue');
  await shot(page, 'queue');
  await phone(page, 'queue');

  await page.selectOption(`#remedy-${input.claim}`, 'substitute');
  await submit(page, `#resolve-${input.claim} button[type=submit]`);
  check((await text(page, 'h1')).includes('Substitute'), `the substitute preview: ${await text(page, 'h1')}`);
  const offered = await page.locator('#candidates input[type=radio]').evaluateAll((rs) => rs.map((r) => r.value));
  for (const p of input.allowed) { check(offered.includes(p), `${p} offered: ${offered}`); }
  for (const p of input.refused) { check(!offered.includes(p), `${p} not offered: ${offered}`); }
  check((await text(page, '#candidates')).includes(input.refused[0]), 'a dearer product shown with why not');
  await axe(page, 'substitute preview');
  await shot(page, 'substitute-preview');
  await phone(page, 'substitute-preview');
  await page.check(`#product-${input.product}`);
  await page.fill('#reason', 'Would rather have the basic edition now.');
  await submit(page, '#confirm-remedy button[type=submit]');

  check((await text(page, 'h1')) === 'Decided: substitute', `the decision page: ${await text(page, 'h1')}`);
  const decision = await text(page, '#decision');
  check(decision.includes('Claim closed') && decision.includes(input.claim), `the claim closed: ${decision}`);
  check(decision.includes('New license'), `the new license: ${decision}`);
  const key = (await page.inputValue('#license-key')).trim();
  check(key.length > 0, 'the new key shown');
  const made = await page.locator('#decision a[href^="/console/licenses/lic_"]').evaluateAll((as) => as.map((a) => a.textContent.trim()));
  await axe(page, 'decision');
  await shot(page, 'decision');

  await open(page, '/console/claims');
  check(await page.locator(item).count() === 0, 'the claim left the queue');
  check(await page.locator('#queue-empty').count() === 1, 'the queue says it is empty');
  await axe(page, 'claims queue, empty');
  result({ key, new_license: made.find((l) => l !== input.license) });
});
