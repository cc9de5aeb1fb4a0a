# The mail keyclerk sends to customers, in English. Every message has a subject
# and a text; the HTML part is made from the text (paragraphs, the key set apart).
# A key here must exist in every other language (a unit test checks).

license-key-subject = Your license key for { $product }
license-key-text =
    Hello,

    Thank you for your purchase of { $product }. Here is your license key:

    { $key }

    Enter it in the application to activate it.{ $activate_by ->
        [none] {""}
       *[other] {" "}Please activate it by { $activate_by }.
    }

    Order: { $order_id }

sign-in-subject = Your sign-in link
sign-in-text =
    Hello,

    Here is your link to sign in and see your licenses. It works once, for 30 minutes:

    { $link }

    If you did not ask for it, you can ignore this message.

claim-received-subject = We received your request for { $product }
claim-received-text =
    Hello,

    We received your request about your license for { $product }. Our support team will look at it and write to you.

    Order: { $order_id }

claim-decided-subject = Your request for { $product } has been decided
claim-decided-text =
    Hello,

    Your request about your license for { $product } has been decided: { $outcome ->
        [granted] it is granted.
        [credit] you receive store credit.
        [refund] you are refunded.
       *[declined] we could not grant it.
    }{ $key ->
        [none] {""}
       *[other] {"\u000A\u000A"}Your new license key:{"\u000A\u000A"}{ $key }
    }

    Order: { $order_id }

reminder-subject = Activate { $product } within { $days } days
reminder-text =
    Hello,

    You have not activated { $product } yet. Please activate it by { $activate_by }, in { $days } days. Your license key:

    { $key }

    Order: { $order_id }
