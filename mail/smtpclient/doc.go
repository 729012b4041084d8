// Package smtpclient sends composed mails over SMTP (go-smtp) with a
// connection cache; every error says whether retrying can help.
//
// It imports mail (for Outgoing).
package smtpclient
