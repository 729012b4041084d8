package mail

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Signer makes and checks the identifiers this bridge puts in outbound mail:
// Message-IDs and reply tokens. Both carry the ticket id and an HMAC so that a
// desk reply can be threaded back even when the ledger of sent Message-IDs is
// lost, and so that nobody can forge one to land a mail on a ticket.
//
// Key is desk.signing_key. With an empty key identifiers are still made, but
// none ever verifies: an unkeyed MAC proves nothing.
type Signer struct {
	Key []byte
	// PreviousKeys are keys used before Key, still accepted when checking
	// (never used to sign): after a rotation, tokens and Message-IDs in
	// the replies to older mails keep threading.
	PreviousKeys [][]byte
	// Domain is the right-hand side of the Message-IDs, e.g. "ent.example"
	// (the domain of reply_to or from).
	Domain string
}

const (
	idsMsgIDPrefix = "sb"
	idsRandomBytes = 10
	idsMsgMACBytes = 10
	// A reply token travels in a local part (64 octets at most with the base
	// address): 8 bytes of MAC keep it short and are plenty against online
	// guessing through a mailbox.
	idsTokenMACBytes = 8
	idsMaxKindLen    = 16
	// idsMaxLen bounds what the parsers look at: a header line is at most 998
	// octets, anything longer is not ours.
	idsMaxLen       = 998
	idsFallbackHost = "supportbridge.invalid"
)

// Base32 is RFC 4648 base32 in lower case without padding: it survives
// case-folding mail software and uses no character special in a msg-id or a
// local part.
func Base32() *base32.Encoding {
	return base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
}

// MessageIDDomain returns the Message-ID domain, lower-cased; an empty or malformed
// Domain falls back to a reserved name rather than producing an invalid
// msg-id.
func (s Signer) MessageIDDomain() string {
	d := strings.ToLower(strings.TrimSpace(s.Domain))
	if d == "" || len(d) > 253 {
		return idsFallbackHost
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return idsFallbackHost
		}
	}
	return d
}

// idsKind keeps only lower-case ASCII letters and digits of kind, so that it
// cannot break the dotted layout of the Message-ID.
func idsKind(kind string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(kind) {
		if (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') && b.Len() < idsMaxKindLen {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func (s Signer) mac(label, text string, n int) string {
	return idsMAC(s.Key, label, text, n)
}

// verify reports whether sum is the MAC of text under Key or one of the
// previous keys.
func (s Signer) verify(label, text string, n int, sum string) bool {
	if hmac.Equal([]byte(sum), []byte(idsMAC(s.Key, label, text, n))) {
		return true
	}
	for _, k := range s.PreviousKeys {
		if len(k) > 0 && hmac.Equal([]byte(sum), []byte(idsMAC(k, label, text, n))) {
			return true
		}
	}
	return false
}

func idsMAC(key []byte, label, text string, n int) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(text))
	return Base32().EncodeToString(m.Sum(nil)[:n])
}

// NewMessageID returns a new signed Message-ID, without angle brackets (the
// form go-message's SetMessageID, MessageID and MsgIDList use):
//
//	sb.<kind>.<base32 ticket id>.<base32 random>.<base32 hmac>@<domain>
//
// kind is a short lower-case word ("esc", "fu"); other characters are
// dropped. The HMAC covers kind, ticket id and the random part.
func (s Signer) NewMessageID(ticketID, kind string) string {
	enc := Base32()
	random := make([]byte, idsRandomBytes)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(random)
	left := idsMsgIDPrefix + "." + idsKind(kind) + "." + enc.EncodeToString([]byte(ticketID)) + "." + enc.EncodeToString(random)
	return left + "." + s.mac("sb-msgid-v1", left, idsMsgMACBytes) + "@" + s.MessageIDDomain()
}

// ParseMessageID checks a Message-ID made by NewMessageID, with or without
// angle brackets, and returns the ticket id and kind it carries. ok is true
// only when the domain is this signer's and the HMAC verifies.
func (s Signer) ParseMessageID(id string) (ticketID, kind string, ok bool) {
	if len(s.Key) == 0 || len(id) > idsMaxLen {
		return "", "", false
	}
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
		id = id[1 : len(id)-1]
	}
	at := strings.LastIndexByte(id, '@')
	if at < 0 || !strings.EqualFold(id[at+1:], s.MessageIDDomain()) {
		return "", "", false
	}
	// Base32 and the kind are case-insensitive here: some software folds
	// case, and the MAC is taken over the lower-cased text.
	left := strings.ToLower(id[:at])
	parts := strings.Split(left, ".")
	if len(parts) != 5 || parts[0] != idsMsgIDPrefix {
		return "", "", false
	}
	signed := left[:strings.LastIndexByte(left, '.')]
	if !s.verify("sb-msgid-v1", signed, idsMsgMACBytes, parts[4]) {
		return "", "", false
	}
	raw, err := Base32().DecodeString(parts[2])
	if err != nil {
		return "", "", false
	}
	return string(raw), parts[1], true
}

// idsRawTicketID reports whether a ticket id can go in a reply token as is:
// lower-case letters and digits only, so case folding cannot change it.
func idsRawTicketID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ReplyToken returns a short signed token carrying ticketID, made of
// lower-case letters and digits only, for a plus-address local part. It is
// the same for a given ticket and key, so a ticket keeps one Reply-To.
//
// Layout: one mode letter ('r': the id as is, for ids of lower-case letters
// and digits; 'b': the id in base32), the encoded id, then 13 characters of
// HMAC.
func (s Signer) ReplyToken(ticketID string) string {
	payload := "b" + Base32().EncodeToString([]byte(ticketID))
	if idsRawTicketID(ticketID) {
		payload = "r" + ticketID
	}
	return payload + s.mac("sb-reply-v1", payload, idsTokenMACBytes)
}

// ParseReplyToken checks a token made by ReplyToken (in any letter case) and
// returns its ticket id.
func (s Signer) ParseReplyToken(tok string) (ticketID string, ok bool) {
	macLen := Base32().EncodedLen(idsTokenMACBytes)
	if len(s.Key) == 0 || len(tok) > idsMaxLen || len(tok) < 2+macLen {
		return "", false
	}
	tok = strings.ToLower(tok)
	payload, sum := tok[:len(tok)-macLen], tok[len(tok)-macLen:]
	if !s.verify("sb-reply-v1", payload, idsTokenMACBytes, sum) {
		return "", false
	}
	switch payload[0] {
	case 'r':
		ticketID = payload[1:]
		if !idsRawTicketID(ticketID) {
			return "", false
		}
	case 'b':
		raw, err := Base32().DecodeString(payload[1:])
		if err != nil || len(raw) == 0 {
			return "", false
		}
		ticketID = string(raw)
	default:
		return "", false
	}
	return ticketID, true
}

// PlusAddress puts token in the local part of addr:
// ("assistance@ent.example", "tok") → "assistance+tok@ent.example". A tag
// already in addr is replaced; an empty token gives the base address; an addr
// without '@' is returned unchanged.
func PlusAddress(addr, token string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if plus := strings.IndexByte(local, '+'); plus >= 0 {
		local = local[:plus]
	}
	if token == "" {
		return local + "@" + domain
	}
	return local + "+" + token + "@" + domain
}

// SplitPlusAddress is the inverse of PlusAddress: it returns the address
// without its tag (domain lower-cased, the local part as given) and the tag.
// Surrounding spaces and angle brackets are ignored. An address without '@'
// is returned trimmed, with no token.
func SplitPlusAddress(addr string) (base, token string) {
	addr = strings.TrimSpace(addr)
	if strings.HasPrefix(addr, "<") && strings.HasSuffix(addr, ">") {
		addr = addr[1 : len(addr)-1]
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	local, domain := addr[:at], strings.ToLower(addr[at+1:])
	if plus := strings.IndexByte(local, '+'); plus >= 0 {
		local, token = local[:plus], local[plus+1:]
	}
	return local + "@" + domain, token
}
