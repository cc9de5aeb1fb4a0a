# Les messages que keyclerk envoie aux clients, en français. Chaque message a un
# objet et un texte ; la partie HTML est faite du texte (paragraphes, la clé à part).
# Une clé présente ici doit l'être dans chaque autre langue (un test le vérifie).

license-key-subject = Votre clé de licence pour { $product }
license-key-text =
    Bonjour,

    Merci pour votre achat de { $product }. Voici votre clé de licence :

    { $key }

    Saisissez-la dans l'application pour l'activer.{ $activate_by ->
        [none] {""}
       *[other] {" "}Activez-la avant le { $activate_by }.
    }

    Commande : { $order_id }

sign-in-subject = Votre lien de connexion
sign-in-text =
    Bonjour,

    Voici votre lien pour vous connecter et voir vos licences. Il sert une fois, pendant 30 minutes :

    { $link }

    Si vous ne l'avez pas demandé, ignorez ce message.

claim-received-subject = Nous avons reçu votre demande pour { $product }
claim-received-text =
    Bonjour,

    Nous avons reçu votre demande concernant votre licence de { $product }. Notre équipe d'assistance va l'examiner et vous écrira.

    Commande : { $order_id }

claim-decided-subject = Votre demande pour { $product } a été traitée
claim-decided-text =
    Bonjour,

    Votre demande concernant votre licence de { $product } a été traitée : { $outcome ->
        [granted] elle est accordée.
        [credit] vous recevez un avoir.
        [refund] vous êtes remboursé.
       *[declined] nous n'avons pas pu l'accorder.
    }{ $key ->
        [none] {""}
       *[other] {"\u000A\u000A"}Votre nouvelle clé de licence :{"\u000A\u000A"}{ $key }
    }

    Commande : { $order_id }

reminder-subject = Activez { $product } d'ici { $days } jours
reminder-text =
    Bonjour,

    Vous n'avez pas encore activé { $product }. Activez-le avant le { $activate_by }, dans { $days } jours. Votre clé de licence :

    { $key }

    Commande : { $order_id }
