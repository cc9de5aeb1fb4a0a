# The customer page (/my). Every string the page shows is here; French in
# ../fr/my.ftl has the same keys (a unit test holds them equal).

my-title = Your licenses
my-skip = Skip to the content
my-language = Language
my-sign-out = Sign out
my-back = Back to your licenses

## Signing in
my-sign-in-title = Sign in to see your licenses
my-sign-in-intro = Sign in with your license key, or with the email address you bought with.
my-key-heading = With your license key
my-key-label = License key
my-key-hint = The key from your purchase mail, signed (v4.public…) or short.
my-key-submit = Sign in with the key
my-key-unknown = This key is not one we know. Check that you copied all of it.
my-email-heading = With your email
my-email-label = Email address
my-email-hint = We mail a link that signs you in once, within 30 minutes.
my-email-submit = Mail me a sign-in link
my-email-unavailable = Signing in by email is not available here: this server sends no mail. Sign in with your license key instead.
my-throttled = Too many attempts. Wait { $minutes ->
    [one] one minute
   *[other] { $minutes } minutes
  }, then try again.
my-link-sent-title = Check your mailbox
my-link-sent = If this email has licenses with us, a sign-in link is on its way to { $email }. It works once, for 30 minutes.
my-link-sent-spam = Nothing after a few minutes? Look in your spam folder, or sign in with your license key.

## The link from the mail
my-link-confirm-title = Sign in
my-link-confirm = Press the button to sign in and see your licenses.
my-link-confirm-submit = Sign in
my-link-used-title = This link was already used
my-link-used = A sign-in link works only once. Ask for a new one.
my-link-expired-title = This link has expired
my-link-expired = A sign-in link works for 30 minutes. Ask for a new one.
my-link-unknown-title = This link does not work
my-link-unknown = Check that you opened the whole link from the mail, or ask for a new one.
my-link-again = Ask for a new link

## The licenses
my-signed-in-as-email = Licenses of { $email }
my-signed-in-as-key = The license of your key
my-none = No license is sold to this email.
my-product = Product
my-status = Status
my-status-active = Active
my-status-suspended = Suspended
my-status-revoked = Revoked
my-status-refunded = Refunded
my-status-superseded = Replaced by another license
my-status-pending_payment = Waiting for payment
my-status-credited = Turned into store credit
my-order = Order
my-purchased = Bought on
my-activate-by = Activate by
my-expires = Expires
my-never = Never
my-no-deadline = No deadline
my-not-yet = Counted from the first activation
my-days-left = { $days ->
    [0] today
    [one] one day left
   *[other] { $days } days left
  }
my-days-late = { $days ->
    [one] one day ago
   *[other] { $days } days ago
  }
my-activated = Activated
my-key = Your key
my-copy = Copy the key
my-copied = Copied
my-seats = Seats in use: { $used } of { $seats }
my-machines = Machines
my-machines-none = No machine holds a seat.
my-machine-name = Name
my-machine-platform = Platform
my-machine-since = Since
my-machine-seen = Last seen
my-machine-unnamed = (no name)
my-deactivate = Deactivate
my-credit = Store credit
my-credit-none = No store credit.
my-downloads = Downloads
my-downloads-note = Each link works for a few minutes: reload the page for new ones.
my-decisions = Decisions about this license
my-decisions-none = None.
my-decision = { $date }: { $remedy }{ $automatic ->
    [yes] , granted at once
   *[no] {""}
  }
my-remedy-extend = the activation window was opened again
my-remedy-substitute = another product was given instead
my-remedy-upgrade = an upgrade was offered
my-remedy-credit = the price went to your store credit
my-remedy-refund = the purchase was refunded
my-remedy-decline = the claim was declined
my-claims-pending = A claim you filed on { $date } waits for our support team.

## Deactivating a machine
my-deactivate-title = Deactivate a machine
my-deactivate-confirm = Deactivate { $name }? Its seat is freed; the app on that machine stops working until it is activated again.
my-deactivate-limit = You can free { $limit ->
    [one] one seat
   *[other] { $limit } seats
  } every 30 days.
my-deactivate-submit = Yes, deactivate it
my-cancel = Cancel
my-deactivated-title = Machine deactivated
my-deactivated = { $name } no longer holds a seat.
my-deactivate-refused-title = Not deactivated
my-deactivate-refused = You freed as many seats as allowed in the last 30 days. One more is possible on { $date }.
my-deactivate-refused-never = You freed as many seats as allowed in the last 30 days. Ask our support team for help.
my-machine-unknown = This machine is not one of yours, or it was already deactivated.

## The late claim
my-claim-title = The activation window has closed
my-claim-intro = This license was never activated before its deadline. Tell us what happened and ask to use it.
my-claim-message = What happened (optional)
my-claim-submit = Ask to use my license
my-claim-granted-title = Your license works again
my-claim-granted = Your claim was granted at once. You can activate your app now.
my-claim-new-key = Your new key:
my-claim-filed-title = Your claim was sent
my-claim-filed = Our support team will look at it and write to you.
my-claim-not-needed-title = Nothing to claim
my-claim-not-needed = Your key works as it is: activate your app with it.

## Activating a machine without internet
my-offline-title = Activate a machine without internet
my-offline-link = A machine without internet? Activate it here.
my-offline-intro = A computer that cannot reach the internet can still be activated, from this page on any device that can.
my-offline-step-code = In the app on that computer, choose to activate offline: it shows a request code that starts with KCA (and a QR code that opens this page with the code filled in).
my-offline-step-paste = Paste the whole code below and send it.
my-offline-step-file = Your browser saves a certificate file. Copy it to that computer (on a USB stick, for example) and open it in the app.
my-offline-code-label = Request code
my-offline-code-hint = It starts with KCA. Spaces and line breaks do not matter.
my-offline-submit = Activate and download the certificate
my-offline-seat = The machine takes one seat of your license, as an activation over the internet does. Sending the same code again gives a fresh certificate for the same seat: do that before its lease ends.
my-offline-not-a-code = This is not a request code. The app shows one that starts with KCA.
my-offline-damaged = This code is damaged or incomplete. Copy it again, all of it.
my-offline-newer = This code comes from a newer version of the app than this server reads. Ask our support team for help.
my-offline-invalid = The app made a code this server cannot use. Ask our support team for help.
my-offline-key-unknown = The license key in this code is not one we know. Check that the app holds the key you bought.
my-offline-refused-title = Not activated
my-offline-suspended = This license is suspended. Ask our support team for help.
my-offline-revoked = This license was revoked or refunded.
my-offline-superseded = This license was replaced by another. Enter the new key in the app and make a new code.
my-offline-pending = This license waits for its payment to complete.
my-offline-expired = This license has expired. Renew it to activate machines again.
my-offline-window-closed = This license was not activated in time. Sign in to ask for more time.
my-offline-seats = Every seat of this license is taken. Deactivate a machine on your licenses page, then send the code again.

## Errors
my-form-expired-title = This form has expired
my-form-expired = Open the page again and send the form once more.
my-foreign-title = This form did not come from this site
my-foreign = Open the page again and send the form from there.
my-not-found-title = No such page
my-not-found = Check the address, or start again from your licenses.
my-down-title = The service is not answering
my-down = Try again in a minute.
my-failed-title = Something went wrong on our side
my-failed = Try again; if it keeps failing, write to our support team.
my-bad-form-title = The form was incomplete
my-bad-form = Fill in the field and send it again.
my-seats-heading = Seats
