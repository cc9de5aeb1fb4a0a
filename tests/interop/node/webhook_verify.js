// Verifies deliveries of keyclerk's webhooks with the npm `standardwebhooks`
// library (tests/api/webhooks.rs): reads a JSON file of
// [{secret, body, headers}], prints one line per delivery, exits 1 if any fails.
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

// The verification the README shows ("Webhooks to your systems"): the raw body and
// the request's headers, with the endpoint's `whsec_…` secret.
function verifyDelivery(secret, body, headers) {
  // The event ({type, timestamp, data}) if keyclerk signed it; throws otherwise.
  return new Webhook(secret).verify(body, headers);
}

let failed = 0;
for (const d of JSON.parse(fs.readFileSync(process.argv[2], "utf8"))) {
  try {
    const event = verifyDelivery(d.secret, d.body, d.headers);
    console.log(`verified ${d.headers["webhook-id"]} ${event.type}`);
  } catch (e) {
    failed += 1;
    console.log(`FAILED ${d.headers["webhook-id"]}: ${e.message}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
