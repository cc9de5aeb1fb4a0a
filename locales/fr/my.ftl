# La page client (/my). Mêmes clés que ../en/my.ftl (un test unitaire y veille).

my-title = Vos licences
my-skip = Aller au contenu
my-language = Langue
my-sign-out = Se déconnecter
my-back = Retour à vos licences

## Connexion
my-sign-in-title = Connectez-vous pour voir vos licences
my-sign-in-intro = Connectez-vous avec votre clé de licence, ou avec l’adresse e-mail de votre achat.
my-key-heading = Avec votre clé de licence
my-key-label = Clé de licence
my-key-hint = La clé reçue par e-mail après l’achat, signée (v4.public…) ou courte.
my-key-submit = Se connecter avec la clé
my-key-unknown = Nous ne connaissons pas cette clé. Vérifiez que vous l’avez copiée en entier.
my-email-heading = Avec votre e-mail
my-email-label = Adresse e-mail
my-email-hint = Nous envoyons un lien qui vous connecte une fois, dans les 30 minutes.
my-email-submit = M’envoyer un lien de connexion
my-email-unavailable = La connexion par e-mail n’est pas disponible ici : ce serveur n’envoie pas d’e-mail. Connectez-vous avec votre clé de licence.
my-throttled = Trop d’essais. Attendez { $minutes ->
    [one] une minute
   *[other] { $minutes } minutes
  }, puis réessayez.
my-link-sent-title = Consultez votre boîte mail
my-link-sent = Si cette adresse a des licences chez nous, un lien de connexion part vers { $email }. Il fonctionne une fois, pendant 30 minutes.
my-link-sent-spam = Rien après quelques minutes ? Regardez dans les indésirables, ou connectez-vous avec votre clé.

## Le lien de l’e-mail
my-link-confirm-title = Connexion
my-link-confirm = Appuyez sur le bouton pour vous connecter et voir vos licences.
my-link-confirm-submit = Se connecter
my-link-used-title = Ce lien a déjà servi
my-link-used = Un lien de connexion ne sert qu’une fois. Demandez-en un nouveau.
my-link-expired-title = Ce lien a expiré
my-link-expired = Un lien de connexion fonctionne 30 minutes. Demandez-en un nouveau.
my-link-unknown-title = Ce lien ne fonctionne pas
my-link-unknown = Vérifiez que vous avez ouvert le lien entier de l’e-mail, ou demandez-en un nouveau.
my-link-again = Demander un nouveau lien

## Les licences
my-signed-in-as-email = Licences de { $email }
my-signed-in-as-key = La licence de votre clé
my-none = Aucune licence n’est vendue à cette adresse.
my-product = Produit
my-status = État
my-status-active = Active
my-status-suspended = Suspendue
my-status-revoked = Révoquée
my-status-refunded = Remboursée
my-status-superseded = Remplacée par une autre licence
my-status-pending_payment = En attente de paiement
my-status-credited = Convertie en avoir
my-order = Commande
my-purchased = Achetée le
my-activate-by = À activer avant le
my-expires = Expire le
my-never = Jamais
my-no-deadline = Pas de date limite
my-not-yet = Compté à partir de la première activation
my-days-left = { $days ->
    [0] aujourd’hui
    [one] encore un jour
   *[other] encore { $days } jours
  }
my-days-late = { $days ->
    [one] il y a un jour
   *[other] il y a { $days } jours
  }
my-activated = Activée
my-key = Votre clé
my-copy = Copier la clé
my-copied = Copiée
my-seats = Postes utilisés : { $used } sur { $seats }
my-machines = Machines
my-machines-none = Aucune machine n’occupe de poste.
my-machine-name = Nom
my-machine-platform = Plateforme
my-machine-since = Depuis
my-machine-seen = Vue le
my-machine-unnamed = (sans nom)
my-deactivate = Désactiver
my-credit = Avoir
my-credit-none = Aucun avoir.
my-downloads = Téléchargements
my-downloads-note = Chaque lien fonctionne quelques minutes : rechargez la page pour en obtenir de nouveaux.
my-decisions = Décisions sur cette licence
my-decisions-none = Aucune.
my-decision = { $date } : { $remedy }{ $automatic ->
    [yes] , accordé aussitôt
   *[no] {""}
  }
my-remedy-extend = la période d’activation a été rouverte
my-remedy-substitute = un autre produit a été donné à la place
my-remedy-upgrade = une mise à niveau a été proposée
my-remedy-credit = le prix a été versé sur votre avoir
my-remedy-refund = l’achat a été remboursé
my-remedy-decline = la demande a été refusée
my-claims-pending = Une demande envoyée le { $date } attend notre équipe d’assistance.

## Désactiver une machine
my-deactivate-title = Désactiver une machine
my-deactivate-confirm = Désactiver { $name } ? Son poste est libéré ; l’application sur cette machine ne fonctionne plus jusqu’à une nouvelle activation.
my-deactivate-limit = Vous pouvez libérer { $limit ->
    [one] un poste
   *[other] { $limit } postes
  } tous les 30 jours.
my-deactivate-submit = Oui, la désactiver
my-cancel = Annuler
my-deactivated-title = Machine désactivée
my-deactivated = { $name } n’occupe plus de poste.
my-deactivate-refused-title = Non désactivée
my-deactivate-refused = Vous avez libéré autant de postes que permis ces 30 derniers jours. Un de plus sera possible le { $date }.
my-deactivate-refused-never = Vous avez libéré autant de postes que permis ces 30 derniers jours. Demandez de l’aide à notre équipe d’assistance.
my-machine-unknown = Cette machine n’est pas l’une des vôtres, ou elle a déjà été désactivée.

## La demande tardive
my-claim-title = La période d’activation est terminée
my-claim-intro = Cette licence n’a jamais été activée avant sa date limite. Dites-nous ce qui s’est passé et demandez à l’utiliser.
my-claim-message = Ce qui s’est passé (facultatif)
my-claim-submit = Demander à utiliser ma licence
my-claim-granted-title = Votre licence fonctionne de nouveau
my-claim-granted = Votre demande a été accordée aussitôt. Vous pouvez activer votre application maintenant.
my-claim-new-key = Votre nouvelle clé :
my-claim-filed-title = Votre demande est envoyée
my-claim-filed = Notre équipe d’assistance va l’examiner et vous écrire.
my-claim-not-needed-title = Rien à demander
my-claim-not-needed = Votre clé fonctionne telle quelle : activez votre application avec elle.

## Activer une machine sans internet
my-offline-title = Activer une machine sans internet
my-offline-link = Une machine sans internet ? Activez-la ici.
my-offline-intro = Un ordinateur qui n’accède pas à internet peut quand même être activé, depuis cette page, sur n’importe quel appareil connecté.
my-offline-step-code = Dans l’application sur cet ordinateur, choisissez l’activation hors ligne : elle affiche un code de demande qui commence par KCA (et un code QR qui ouvre cette page avec le code déjà saisi).
my-offline-step-paste = Collez le code entier ci-dessous et envoyez-le.
my-offline-step-file = Votre navigateur enregistre un fichier de certificat. Copiez-le sur cet ordinateur (sur une clé USB, par exemple) et ouvrez-le dans l’application.
my-offline-code-label = Code de demande
my-offline-code-hint = Il commence par KCA. Les espaces et les retours à la ligne ne comptent pas.
my-offline-submit = Activer et télécharger le certificat
my-offline-seat = La machine occupe un poste de votre licence, comme une activation par internet. Envoyer de nouveau le même code donne un nouveau certificat pour le même poste : faites-le avant la fin de son bail.
my-offline-not-a-code = Ce n’est pas un code de demande. L’application en affiche un qui commence par KCA.
my-offline-damaged = Ce code est abîmé ou incomplet. Copiez-le de nouveau, en entier.
my-offline-newer = Ce code vient d’une version de l’application plus récente que ce que ce serveur sait lire. Demandez de l’aide à notre support.
my-offline-invalid = L’application a produit un code que ce serveur ne peut pas utiliser. Demandez de l’aide à notre support.
my-offline-key-unknown = La clé de licence de ce code nous est inconnue. Vérifiez que l’application contient la clé que vous avez achetée.
my-offline-refused-title = Non activée
my-offline-suspended = Cette licence est suspendue. Demandez de l’aide à notre support.
my-offline-revoked = Cette licence a été révoquée ou remboursée.
my-offline-superseded = Cette licence a été remplacée par une autre. Saisissez la nouvelle clé dans l’application et produisez un nouveau code.
my-offline-pending = Cette licence attend la fin de son paiement.
my-offline-expired = Cette licence a expiré. Renouvelez-la pour activer de nouveau des machines.
my-offline-window-closed = Cette licence n’a pas été activée à temps. Connectez-vous pour demander un délai.
my-offline-seats = Tous les postes de cette licence sont occupés. Désactivez une machine sur la page de vos licences, puis envoyez de nouveau le code.

## Erreurs
my-form-expired-title = Ce formulaire a expiré
my-form-expired = Ouvrez la page de nouveau et renvoyez le formulaire.
my-foreign-title = Ce formulaire ne vient pas de ce site
my-foreign = Ouvrez la page de nouveau et envoyez le formulaire depuis celle-ci.
my-not-found-title = Page introuvable
my-not-found = Vérifiez l’adresse, ou repartez de vos licences.
my-down-title = Le service ne répond pas
my-down = Réessayez dans une minute.
my-failed-title = Un problème est survenu chez nous
my-failed = Réessayez ; si cela continue, écrivez à notre équipe d’assistance.
my-bad-form-title = Le formulaire était incomplet
my-bad-form = Remplissez le champ et renvoyez-le.
my-seats-heading = Postes
