// The customer page in French, from Accept-Language: the sign-in and the licenses;
// axe on every page.
import { axe, check, input, open, run, shot, submit, text } from './lib.mjs';

await run(async (page) => {
  await page.setExtraHTTPHeaders({ 'Accept-Language': 'fr-FR,fr;q=0.9' });
  await open(page, '/my');
  check(await page.getAttribute('html', 'lang') === 'fr', 'the page says it is French');
  check((await text(page, 'h1')).includes('Connectez-vous'), `French: ${await text(page, 'h1')}`);
  await axe(page, 'my sign-in fr');
  await page.fill('#key', input.key);
  await submit(page, '#key ~ button[type=submit]');
  check((await text(page, 'h1')).includes('La licence de votre clé'), `signed in: ${await text(page, 'main')}`);
  check((await text(page, 'main')).includes('Postes utilisés'), 'seats in French');
  const copy = page.locator('button[data-copy]');
  check(await copy.isVisible(), 'the copy button shows with script');
  check((await copy.textContent()).includes('Copier la clé'), 'the copy button in French');
  await axe(page, 'my licenses fr');
  await shot(page, 'licenses', 'my-fr');
  // The switch: English, kept by the cookie.
  await submit(page, 'a[hreflang=en]');
  check(await page.getAttribute('html', 'lang') === 'en', 'switched to English');
  await open(page, '/my');
  check((await text(page, 'h1')).includes('The license of your key'), 'the choice is kept');
});
