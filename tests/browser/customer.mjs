// A support agent opens a customer's page from the search page's address and sees
// every license sold to that email.
import { axe, check, input, open, phone, run, shot, signIn, submit } from './lib.mjs';

await run(async (page) => {
  await signIn(page, input.email, input.password);
  await axe(page, 'search');
  // The customer page is reached by its address, and by its own look-up form.
  await open(page, `/console/customers/${encodeURIComponent(input.customer)}`);
  await page.fill('#customer-email', input.customer.toUpperCase());
  await submit(page, 'form[role=search] button');
  check((await page.textContent('h1')).includes(input.customer), 'the customer named');
  const rows = await page.locator('#licenses tbody tr').allTextContents();
  check(rows.length === input.licenses.length, `${rows.length} licenses shown, not ${input.licenses.length}`);
  for (const id of input.licenses) {
    check(await page.locator(`#licenses a[href="/console/licenses/${id}"]`).count() === 1, `a link to ${id}`);
  }
  check(rows.some((r) => r.includes('active')), 'statuses shown');
  check(rows.some((r) => r.includes('credited')), 'the credited license shown so');
  check((await page.textContent('.balance')) === input.balance, 'the credit balance');
  check(await page.locator('#claims tbody tr').count() === input.claims, 'the claims');
  check(!(await page.content()).includes('<script>alert'), 'metadata escaped');
  await axe(page, 'customer');
  await shot(page, 'customer', 'console-customer');
  // On a phone the page keeps to the screen's width (wide tables scroll on their own).
  await phone(page, 'customer');
  await open(page, '/console/customers/nobody%40example.com');
  check((await page.textContent('main')).includes('No license was sold'), 'an empty state that says what to do');
  await axe(page, 'customer, none');
  // A support agent's header has no admin links; the admin pages answer 403.
  check(await page.locator('a[href="/console/admin/users"]').count() === 0, 'no admin links');
  await open(page, '/console/admin/tokens', 403);
  await axe(page, 'forbidden');
});
