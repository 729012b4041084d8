// Package inbound turns a desk's mail into the domain's calls: it parses each
// mail (MIME, charsets, size limits, HTML to text), classifies it (our own
// mail looping back, a bounce, an automatic answer, a help-desk product's
// acknowledgement or solved/closed notice, a reply), checks the sender
// (Authentication-Results), threads it onto its ticket, keeps only the new
// text (quotes, signatures and a product's layout removed; a forwarded
// message kept) and hands the result to the domain; what it cannot apply
// goes to quarantine. Its Processor is imapreader's MessageHandler.
//
// It imports bridge, mail and mail/imapreader.
package inbound
