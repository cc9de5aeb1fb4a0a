// keyclerk interop check with the Node `paseto` library (panva), not written by us.
//
//   node paseto_interop.js verify K4_PUBLIC TOKEN   # prints the claims, exit 1 if refused
//   node paseto_interop.js sign                     # prints {"public_key", "token"}
//
// verifyLicenseKey is the code the README shows to app developers.
const { V4 } = require('paseto');

async function verifyLicenseKey(token, publicKeyPaserk) {
  const raw = Buffer.from(publicKeyPaserk.replace(/^k4\.public\./, ''), 'base64url');
  const key = V4.bytesToKeyObject(raw);
  const claims = await V4.verify(token, key);
  if (claims.kind !== 'license') throw new Error('not a license key');
  return claims;
}

async function signSample() {
  const secret = await V4.generateKey('public');
  const { createPublicKey } = require('crypto');
  const publicKey = createPublicKey(secret);
  const raw = V4.keyObjectToBytes(publicKey);
  const claims = {
    kind: 'license', iss: 'node-paseto', sub: 'lic_from_node', product: 'photo-pro',
    iat: '2026-01-01T00:00:00Z', seats: 2, entitlements: ['export'],
  };
  const token = await V4.sign(claims, secret, { iat: false });
  return { public_key: 'k4.public.' + raw.toString('base64url'), token };
}

async function main() {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'verify') {
    try {
      console.log(JSON.stringify(await verifyLicenseKey(b, a)));
    } catch (e) {
      console.error(`refused: ${e.code || e.name}: ${e.message}`);
      process.exit(1);
    }
  } else if (mode === 'sign') {
    console.log(JSON.stringify(await signSample()));
  } else {
    console.error('usage: paseto_interop.js verify K4_PUBLIC TOKEN | sign');
    process.exit(2);
  }
}

main();
