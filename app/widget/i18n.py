"""The widget's and portal's texts in en, de, fr and es.

Plain per-language dicts rather than gettext catalogues: the iframe ships the
strings of one language inline (a few hundred bytes), and a missing key falls
back to English.
"""

from __future__ import annotations

LANGUAGES = ("en", "de", "fr", "es")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "fix_errors": "Please correct {n} field(s):", "slot_keys": "Arrow keys move between times, up and down between days.", "where": "Location",
        "book": "Book an appointment", "location": "Choose a location", "service": "Choose a service",
        "staff": "Choose a person", "any": "Anyone available", "time": "Choose a date and time",
        "details": "Your details", "done": "Booking confirmed", "back": "Back", "next": "Continue",
        "timezone": "Time zone", "later": "Later dates", "no_slots": "No free times in this period.",
        "loading": "Loading…", "seats_left": "{n} seats left", "min": "min", "repeat": "Repeat weekly",
        "times": "Number of weeks", "seats": "Seats", "name": "Name", "email": "Email", "phone": "Phone",
        "optional": "optional", "required": "This field is required", "invalid_email": "Please enter an email address",
        "accept": "I accept the", "terms": "terms and conditions", "privacy": "privacy notice",
        "confirm": "Book now", "ics": "Add to calendar (.ics)", "google": "Add to Google Calendar",
        "manage": "Manage your booking", "close": "Close", "map": "Map", "directions": "Directions",
        "taken": "This time was just taken. Please choose another.", "error": "Something went wrong. Please try again.",
        "all": "Other", "when": "When", "with": "With", "booked_for": "Booked for", "recurring_note": "{n} appointments booked",
        "portal": "My appointments", "sign_in": "Sign in", "send_link": "Email me a sign-in link",
        "link_sent": "If this address has bookings with us, a sign-in link is on its way. It works once, for 15 minutes.",
        "upcoming": "Upcoming", "past": "History", "reschedule": "Reschedule", "cancel": "Cancel",
        "reason": "Reason (optional)", "cancel_confirm": "Cancel this appointment", "profile": "Contact details",
        "save": "Save", "prefs": "Notifications", "email_reminders": "Email reminders", "sms": "Text messages",
        "marketing": "News and offers", "export": "Download my data (JSON)", "erase": "Request erasure of my data",
        "erase_done": "Your erasure request was recorded. The business will handle it.", "sign_out": "Sign out",
        "nothing": "Nothing here.", "status": "Status", "language": "Language", "saved": "Saved.",
        "cancelled": "The appointment was cancelled.", "rescheduled": "The appointment was moved.",
        "choose_time": "Free times", "policy": "Changes online are possible until {deadline}.",
    },
    "de": {
        "fix_errors": "Bitte {n} Feld(er) korrigieren:", "slot_keys": "Pfeiltasten wechseln die Uhrzeit, auf und ab den Tag.", "where": "Standort",
        "book": "Termin buchen", "location": "Standort wählen", "service": "Leistung wählen",
        "staff": "Person wählen", "any": "Beliebige Person", "time": "Datum und Uhrzeit wählen",
        "details": "Ihre Angaben", "done": "Buchung bestätigt", "back": "Zurück", "next": "Weiter",
        "timezone": "Zeitzone", "later": "Spätere Termine", "no_slots": "Keine freien Zeiten in diesem Zeitraum.",
        "loading": "Wird geladen…", "seats_left": "Noch {n} Plätze", "min": "Min.", "repeat": "Wöchentlich wiederholen",
        "times": "Anzahl Wochen", "seats": "Plätze", "name": "Name", "email": "E-Mail", "phone": "Telefon",
        "optional": "optional", "required": "Pflichtfeld", "invalid_email": "Bitte eine E-Mail-Adresse eingeben",
        "accept": "Ich akzeptiere die", "terms": "AGB", "privacy": "Datenschutzerklärung",
        "confirm": "Jetzt buchen", "ics": "Zum Kalender hinzufügen (.ics)", "google": "Zu Google Kalender hinzufügen",
        "manage": "Buchung verwalten", "close": "Schließen", "map": "Karte", "directions": "Route",
        "taken": "Diese Zeit wurde gerade vergeben. Bitte eine andere wählen.", "error": "Etwas ist schiefgelaufen. Bitte erneut versuchen.",
        "all": "Sonstiges", "when": "Wann", "with": "Bei", "booked_for": "Gebucht für", "recurring_note": "{n} Termine gebucht",
        "portal": "Meine Termine", "sign_in": "Anmelden", "send_link": "Anmeldelink per E-Mail senden",
        "link_sent": "Falls diese Adresse bei uns gebucht hat, ist ein Anmeldelink unterwegs. Er gilt einmal, 15 Minuten lang.",
        "upcoming": "Bevorstehend", "past": "Verlauf", "reschedule": "Verschieben", "cancel": "Absagen",
        "reason": "Grund (optional)", "cancel_confirm": "Termin absagen", "profile": "Kontaktdaten",
        "save": "Speichern", "prefs": "Benachrichtigungen", "email_reminders": "Erinnerungen per E-Mail", "sms": "SMS",
        "marketing": "Neuigkeiten und Angebote", "export": "Meine Daten herunterladen (JSON)", "erase": "Löschung meiner Daten beantragen",
        "erase_done": "Ihr Löschantrag wurde erfasst.", "sign_out": "Abmelden",
        "nothing": "Keine Einträge.", "status": "Status", "language": "Sprache", "saved": "Gespeichert.",
        "cancelled": "Der Termin wurde abgesagt.", "rescheduled": "Der Termin wurde verschoben.",
        "choose_time": "Freie Zeiten", "policy": "Online-Änderungen sind bis {deadline} möglich.",
    },
    "fr": {
        "fix_errors": "Veuillez corriger {n} champ(s) :", "slot_keys": "Les flèches changent d'horaire, haut et bas changent de jour.", "where": "Lieu",
        "book": "Prendre rendez-vous", "location": "Choisissez un lieu", "service": "Choisissez une prestation",
        "staff": "Choisissez une personne", "any": "Peu importe", "time": "Choisissez la date et l'heure",
        "details": "Vos coordonnées", "done": "Réservation confirmée", "back": "Retour", "next": "Continuer",
        "timezone": "Fuseau horaire", "later": "Dates suivantes", "no_slots": "Aucun créneau libre sur cette période.",
        "loading": "Chargement…", "seats_left": "{n} places restantes", "min": "min", "repeat": "Répéter chaque semaine",
        "times": "Nombre de semaines", "seats": "Places", "name": "Nom", "email": "E-mail", "phone": "Téléphone",
        "optional": "facultatif", "required": "Champ obligatoire", "invalid_email": "Veuillez saisir une adresse e-mail",
        "accept": "J'accepte les", "terms": "conditions générales", "privacy": "politique de confidentialité",
        "confirm": "Réserver", "ics": "Ajouter au calendrier (.ics)", "google": "Ajouter à Google Agenda",
        "manage": "Gérer ma réservation", "close": "Fermer", "map": "Carte", "directions": "Itinéraire",
        "taken": "Ce créneau vient d'être pris. Choisissez-en un autre.", "error": "Une erreur est survenue. Réessayez.",
        "all": "Autres", "when": "Quand", "with": "Avec", "booked_for": "Réservé pour", "recurring_note": "{n} rendez-vous réservés",
        "portal": "Mes rendez-vous", "sign_in": "Connexion", "send_link": "Recevoir un lien de connexion",
        "link_sent": "Si cette adresse a des réservations chez nous, un lien de connexion arrive. Valable une fois, 15 minutes.",
        "upcoming": "À venir", "past": "Historique", "reschedule": "Déplacer", "cancel": "Annuler",
        "reason": "Motif (facultatif)", "cancel_confirm": "Annuler ce rendez-vous", "profile": "Coordonnées",
        "save": "Enregistrer", "prefs": "Notifications", "email_reminders": "Rappels par e-mail", "sms": "SMS",
        "marketing": "Actualités et offres", "export": "Télécharger mes données (JSON)", "erase": "Demander l'effacement de mes données",
        "erase_done": "Votre demande d'effacement est enregistrée.", "sign_out": "Déconnexion",
        "nothing": "Rien ici.", "status": "Statut", "language": "Langue", "saved": "Enregistré.",
        "cancelled": "Le rendez-vous a été annulé.", "rescheduled": "Le rendez-vous a été déplacé.",
        "choose_time": "Créneaux libres", "policy": "Modifications en ligne possibles jusqu'au {deadline}.",
    },
    "es": {
        "fix_errors": "Corrija {n} campo(s):", "slot_keys": "Las flechas cambian la hora; arriba y abajo, el día.", "where": "Ubicación",
        "book": "Reservar cita", "location": "Elija un lugar", "service": "Elija un servicio",
        "staff": "Elija una persona", "any": "Cualquiera disponible", "time": "Elija fecha y hora",
        "details": "Sus datos", "done": "Reserva confirmada", "back": "Atrás", "next": "Continuar",
        "timezone": "Zona horaria", "later": "Fechas posteriores", "no_slots": "No hay horas libres en este periodo.",
        "loading": "Cargando…", "seats_left": "Quedan {n} plazas", "min": "min", "repeat": "Repetir cada semana",
        "times": "Número de semanas", "seats": "Plazas", "name": "Nombre", "email": "Correo", "phone": "Teléfono",
        "optional": "opcional", "required": "Campo obligatorio", "invalid_email": "Introduzca un correo electrónico",
        "accept": "Acepto los", "terms": "términos y condiciones", "privacy": "aviso de privacidad",
        "confirm": "Reservar", "ics": "Añadir al calendario (.ics)", "google": "Añadir a Google Calendar",
        "manage": "Gestionar mi reserva", "close": "Cerrar", "map": "Mapa", "directions": "Cómo llegar",
        "taken": "Esta hora acaba de ocuparse. Elija otra.", "error": "Algo salió mal. Inténtelo de nuevo.",
        "all": "Otros", "when": "Cuándo", "with": "Con", "booked_for": "Reservado para", "recurring_note": "{n} citas reservadas",
        "portal": "Mis citas", "sign_in": "Entrar", "send_link": "Enviarme un enlace de acceso",
        "link_sent": "Si esta dirección tiene reservas con nosotros, le enviamos un enlace. Sirve una vez, 15 minutos.",
        "upcoming": "Próximas", "past": "Historial", "reschedule": "Cambiar hora", "cancel": "Cancelar",
        "reason": "Motivo (opcional)", "cancel_confirm": "Cancelar esta cita", "profile": "Datos de contacto",
        "save": "Guardar", "prefs": "Notificaciones", "email_reminders": "Recordatorios por correo", "sms": "SMS",
        "marketing": "Novedades y ofertas", "export": "Descargar mis datos (JSON)", "erase": "Solicitar el borrado de mis datos",
        "erase_done": "Su solicitud de borrado quedó registrada.", "sign_out": "Salir",
        "nothing": "Nada por aquí.", "status": "Estado", "language": "Idioma", "saved": "Guardado.",
        "cancelled": "La cita fue cancelada.", "rescheduled": "La cita fue cambiada.",
        "choose_time": "Horas libres", "policy": "Puede cambiarla en línea hasta el {deadline}.",
    },
}


def pick(wanted: str | None, accept=None, fallback: str = "en") -> str:
    """A supported language: the wanted one, else the browser's best match, else the fallback."""
    if wanted in LANGUAGES:
        return wanted
    if accept is not None:
        best = accept.best_match(LANGUAGES)
        if best:
            return best
    return fallback if fallback in LANGUAGES else "en"


def strings(lang: str) -> dict[str, str]:
    """The texts of `lang`, English for anything it lacks."""
    return {**STRINGS["en"], **STRINGS.get(lang, {})}
