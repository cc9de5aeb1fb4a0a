// The customer page: a phone scans the QR code a machine without internet shows,
// which opens /my/offline with the request code in the fragment; the page fills
// the form from it (the code never reaches the server in an address), and the
// certificate file downloads; axe on the page, at laptop and phone widths.
import { readFileSync } from 'node:fs';
import { axe, check, input, open, phone, result, run, shot, text } from './lib.mjs';

await run(async (page) => {
  await open(page, input.path);
  const filled = await page.inputValue('#code');
  check(filled === input.code, `the form holds the code of the fragment: ${filled.slice(0, 40)}…`);
  check(new URL(page.url()).hash === '', `the code left the address: ${page.url()}`);
  check((await text(page, 'h1')).includes('Activate a machine without internet'), 'the heading');
  await axe(page, 'my offline');
  await shot(page, 'form', 'my-offline');
  await phone(page, 'my offline');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click('main form button[type=submit]'),
  ]);
  const name = download.suggestedFilename();
  check(/^keyclerk-certificate-.*\.json$/.test(name), `saved as ${name}`);
  const file = readFileSync(await download.path(), 'utf8');
  check(JSON.parse(file).format === 'keyclerk-certificate', `a certificate file: ${file.slice(0, 80)}`);
  result({ name, file });
});
