package inbound

import (
	"regexp"
	"strings"
	"unicode"
)

// ExtractReply returns the new text of a reply: what the sender wrote above
// the quoted message, without the quote, its attribution line or header
// block, and without the signature. text is the plain text body and html
// the HTML body (either may be empty); both must already be decoded.
//
// The plain text the sender wrote is read first. When there is none (text
// is empty, or is the HTML converted, as ParseMessage makes it for an
// HTML-only mail), or it shows no quote boundary, or it is nothing but a
// quote, the HTML is cut at the first quote mark its client left (Gmail,
// Apple Mail, Thunderbird, Outlook, Zimbra, Yahoo) and converted. If
// stripping leaves nothing, the whole text is returned, trimmed.
func ExtractReply(text, html string) string {
	return NewReplyExtractor().Extract(text, html)
}

// ReplyExtractor is ExtractReply with its patterns compiled once: build it
// with NewReplyExtractor and reuse it. It is safe for concurrent use.
type ReplyExtractor struct {
	re *replyRes
}

// NewReplyExtractor compiles the patterns of the reply extractor.
func NewReplyExtractor() *ReplyExtractor {
	return &ReplyExtractor{re: newReplyRes()}
}

// ReplyContext tells the extractor what the body alone does not: which
// help-desk product wrote the mail (its separators, preamble and history
// layout), the mail's subject (a forward's "TR:" or "Fwd:" makes a quoted
// header block a forwarded message to keep) and our own addresses (a
// message from one of them is our own mail quoted back: never kept).
type ReplyContext struct {
	Product      *DeskProduct
	Subject      string
	OwnAddresses []string
	// KeepForwards keeps a message forwarded below the sender's words
	// (Extract cuts it like any quote).
	KeepForwards bool
	// Notice reads a product's notice: what is left once its boilerplate is
	// gone may be nothing, and then nothing is returned (a reply falls back
	// on its whole text instead).
	Notice bool
}

// Extract does what ExtractReply does. A nil or zero ReplyExtractor works,
// compiling its patterns on each call.
func (x *ReplyExtractor) Extract(text, html string) string {
	return x.ExtractFor(text, html, ReplyContext{})
}

// ExtractFor is Extract for a mail whose context is known: a help-desk
// product's notification loses its separator, preamble and history; a
// message forwarded inside the reply is kept below the sender's words,
// without its own quotes.
func (x *ReplyExtractor) ExtractFor(text, html string, rc ReplyContext) string {
	var re *replyRes
	if x != nil {
		re = x.re
	}
	if re == nil {
		re = newReplyRes()
	}
	x2 := &extraction{re: re, rc: rc}
	t := normalizeReply(text)
	if rc.Product != nil && rc.Product.Layout != nil {
		lt := t
		if strings.TrimSpace(lt) == "" {
			lt = normalizeReply(HTMLToText(html))
		}
		if got, ok := rc.Product.Layout(lt); ok {
			if got == "" && !rc.Notice {
				return trimLines(strings.Split(lt, "\n"))
			}
			return got
		}
	}
	if strings.TrimSpace(html) != "" {
		fromHTML := normalizeReply(HTMLToText(html))
		if strings.TrimSpace(t) == "" || strings.TrimSpace(t) == strings.TrimSpace(fromHTML) {
			// A message forwarded inside the reply sits in the client's
			// quote mark (Gmail's gmail_quote, Outlook's divRplyFwdMsg):
			// the whole text, which the forward survives, comes first.
			if r := x2.strip(fromHTML, 0); rc.KeepForwards && r.forward && r.text != "" {
				return r.text
			}
			// No text of the sender's own (ParseMessage makes Text from
			// the HTML then): the HTML's structure marks the quote better
			// than its text does.
			if h, ok := htmlReplyText(html); ok {
				if r := x2.strip(normalizeReply(h), 0); r.text != "" {
					return r.text
				}
			}
			t = fromHTML
		}
	}
	res := x2.strip(t, 0)
	reply, found := res.text, res.found
	if found && reply != "" {
		return reply
	}
	if strings.TrimSpace(html) != "" {
		if h, ok := htmlReplyText(html); ok {
			if r := x2.strip(normalizeReply(h), 0); r.text != "" {
				return r.text
			}
		}
	}
	if reply != "" || rc.Notice {
		return reply
	}
	return trimLines(strings.Split(t, "\n"))
}

// normalizeReply makes line ends LF and the invisible or non-breaking
// spaces clients sprinkle ("a écrit\u00a0:") plain.
func normalizeReply(s string) string {
	s = normalizeNewlines(s)
	return strings.Map(func(r rune) rune {
		switch r {
		case '\u00a0', '\u202f', '\u2007':
			return ' '
		case '\u200b', '\u200c', '\u200d', '\ufeff', '\u00ad':
			return -1
		}
		return r
	}, s)
}

// replyRes holds the compiled patterns of the reply extractor. They
// are built per call: the package keeps no state.
type replyRes struct {
	attribution   *regexp.Regexp // "On … wrote:", "Le … a écrit :", …
	wroteOnly     *regexp.Regexp // "… wrote:" with no opening word
	separator     *regexp.Regexp // "-----Original Message-----", … (format=flowed may join the next line to it)
	headerFrom    *regexp.Regexp // "From: …", "De : …" opening a header block
	headerField   *regexp.Regexp // "Sent:", "Objet :", …
	headerKey     *regexp.Regexp // the fields that make a block a header block
	headerSubject *regexp.Regexp // a header block's subject field
	oneLineHdr    *regexp.Regexp // "From: … Sent: … Subject: …" on one line
	replyAbove    *regexp.Regexp // "reply above this line" and our own
	forward       *regexp.Regexp // the separators that open a forwarded message
	mobileSig     *regexp.Regexp // "Envoyé de mon iPhone", …
	rule          *regexp.Regexp // "_____" or "-----" lines before a header
}

func newReplyRes() *replyRes {
	const verbs = `wrote|a\s+écrit|a\s+ecrit|escribió|escribio|ha\s+scritto|schreef|skrev`
	return &replyRes{
		attribution: regexp.MustCompile(`(?i)^(?:on|le|am|el|il|op|den)\s.*(?:\b(?:` + verbs + `)\s*:|\bschrieb\b.*:)$`),
		wroteOnly:   regexp.MustCompile(`(?i)^.{1,200}\s(?:` + verbs + `)\s*:$`),
		separator: regexp.MustCompile(`(?i)^(?:-{2,}\s*(?:original message|message d'origine|message d’origine|message original|mail original|forwarded message|message transféré|message transmis|ursprüngliche nachricht|weitergeleitete nachricht|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}(?:\s.*)?` +
			`|begin forwarded message\s*:|début du message réexpédié\s*:|début du message transféré\s*:|anfang der weitergeleiteten nachricht\s*:)$`),
		forward:       regexp.MustCompile(`(?i)(?:forwarded message|message transféré|message transmis|weitergeleitete nachricht|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|begin forwarded message|début du message réexpédié|début du message transféré|anfang der weitergeleiteten nachricht)`),
		headerFrom:    regexp.MustCompile(`(?i)^\*{0,2}(?:from|de|von|van|da|od|fra|från)\s*\*{0,2}\s*:\s*\*{0,2}\s*\S`),
		headerField:   regexp.MustCompile(`(?i)^\*{0,2}(?:sent|envoyé|envoye|date|to|à|a|cc|cci|bcc|subject|objet|sujet|pour|copie à|gesendet|datum|an|betreff|enviado|para|asunto|inviato|oggetto|verzonden|aan|onderwerp|importance|priorité|reply-to|répondre à)\s*\*{0,2}\s*:`),
		headerSubject: regexp.MustCompile(`(?i)^\*{0,2}(?:subject|objet|sujet|betreff|asunto|oggetto|onderwerp)\s*\*{0,2}\s*:`),
		headerKey:     regexp.MustCompile(`(?i)^\*{0,2}(?:sent|envoyé|envoye|date|subject|objet|sujet|gesendet|datum|betreff|enviado|asunto|inviato|oggetto|verzonden|onderwerp)\s*\*{0,2}\s*:`),
		oneLineHdr:    regexp.MustCompile(`(?i)^\*{0,2}(?:from|de)\s*\*{0,2}\s*:.+\s\*{0,2}(?:sent|envoyé|date)\s*\*{0,2}\s*:.+\s\*{0,2}(?:subject|objet)\s*\*{0,2}\s*:`),
		replyAbove:    regexp.MustCompile(`(?i)(?:reply above this (?:line|message)|type your reply above|répond(?:re|ez) au-dessus de (?:cette ligne|ce message)|repond(?:re|ez) au-dessus de (?:cette ligne|ce message))`),
		mobileSig: regexp.MustCompile(`(?i)^(?:envoy[ée] (?:de|depuis|à partir de|a partir de) (?:mon|ma|l'application|outlook|yahoo|gmail|un|une)\b.*` +
			`|sent (?:from|with|via) (?:my|outlook|yahoo|gmail|mail for|samsung|the)\b.*` +
			`|get outlook for (?:ios|android)|obtenir outlook pour (?:ios|android)|télécharger outlook pour (?:ios|android)` +
			`|von meinem \S+ gesendet|gesendet von meinem \S+.*|enviado desde mi \S+.*|inviato da(?:l mio)? \S+.*)` +
			// Outlook's text part appends the link: "…iOS<https://aka.ms/…>".
			`(?:\s*<\S*>)?$`),
		rule: regexp.MustCompile(`^(?:_{5,}|-{5,}|={5,}|\*{5,})$`),
	}
}

// marker is a kind of quote boundary.
type marker int

const (
	noMarker   marker = iota
	quoteMark         // a "> " line
	attribMark        // "On … wrote:" (a quote follows)
	hardMark          // a separator or header block: all below is quoted
)

// extraction is one extraction: the patterns and the mail's context.
type extraction struct {
	re *replyRes
	rc ReplyContext
}

// stripped is what strip makes of a text.
type stripped struct {
	text    string
	found   bool // a quote boundary was seen
	forward bool // a forwarded message was kept
}

// maxForwardDepth bounds forwards kept inside forwards.
const maxForwardDepth = 3

// strip removes the quote and signature from normalised text, and, for a
// help-desk product's notification, the product's separator, preamble and
// history; a message forwarded below the sender's words is kept.
func (x *extraction) strip(t string, depth int) stripped {
	re, prod := x.re, x.rc.Product
	if strings.TrimSpace(t) == "" {
		return stripped{}
	}
	lines := strings.Split(t, "\n")
	if len(lines) > 20000 {
		// Beyond any human reply; bound the scan.
		lines = lines[:20000]
	}
	drop := map[int]bool{}

	cut, kind, span := len(lines), noMarker, 0
	// notification: the mail opened with a "reply above this line"
	// separator, so what follows is a product's notification whose
	// preamble is dropped and whose history ends the new text.
	notification, preamble := false, false
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if trimmed == "" {
			continue
		}
		if preamble {
			if prod.isPreamble(trimmed) || re.rule.MatchString(trimmed) {
				drop[i] = true
				continue
			}
			preamble = false
		}
		if isQuoteLine(lines[i]) {
			if x.rc.KeepForwards && x.quotedForwardAt(lines, i) {
				// A forward the client cited whole (a blockquote):
				// read it one level down, as a forward.
				lines = append(append([]string{}, lines[:i]...), unquote(lines[i:])...)
				cut, kind = i, hardMark
				break
			}
			cut, kind = i, quoteMark
			break
		}
		if n := attributionAt(re, lines, i); n > 0 {
			cut, kind, span = i, attribMark, n
			break
		}
		if isSeparator(re, trimmed) || headerBlockAt(re, lines, i) {
			cut, kind = i, hardMark
			break
		}
		if isReplyAbove(re, trimmed) || prod.isSeparator(trimmed) {
			if hasContentExcept(lines[:i], drop) {
				cut, kind = i, hardMark
				break
			}
			// A desk notification opens with the mark, its new text
			// below: drop the line, read on.
			drop[i] = true
			notification, preamble = true, prod != nil
			continue
		}
		if prod != nil && hasContentExcept(lines[:i], drop) && prod.isHistory(trimmed, notification) {
			cut, kind = i, hardMark
			break
		}
		if prod != nil && !hasContentExcept(lines[:i], drop) && prod.isPreamble(trimmed) {
			// A notification without a separator still opens with its
			// preamble ("Votre demande (5678) a été mise à jour").
			drop[i] = true
			preamble = true
		}
	}
	if kind == quoteMark {
		// A line just above a quote that ends with a colon and names an
		// address or a time is an attribution in a language we do not
		// list ("Em seg., … escreveu:").
		if p := prevContent(lines, cut, 1); p >= 0 && looksLikeAttribution(lines[p]) {
			cut, kind, span = p, attribMark, 1
		}
	}
	found := kind != noMarker
	bound := cut // the boundary line itself, before the walk back
	if found {
		// A rule line ("_____" in Outlook) just above the boundary belongs
		// to it.
		for cut > 0 && (strings.TrimSpace(lines[cut-1]) == "" || re.rule.MatchString(strings.TrimSpace(lines[cut-1]))) {
			cut--
		}
	}

	keep := make([]string, 0, len(lines))
	for i := 0; i < cut; i++ {
		if !drop[i] {
			keep = append(keep, lines[i])
		}
	}
	if (kind == quoteMark || kind == attribMark) && interleaved(re, lines, bound+span) {
		// Answers written between quoted lines: keep them, drop the quotes.
		for i := bound + span; i < len(lines); i++ {
			trimmed := strings.TrimSpace(lines[i])
			if trimmed != "" && (isSeparator(re, trimmed) || headerBlockAt(re, lines, i)) {
				break
			}
			if isQuoteLine(lines[i]) || (trimmed != "" && attributionAt(re, lines, i) > 0) {
				continue
			}
			if trimmed == "" && len(keep) > 0 && strings.TrimSpace(keep[len(keep)-1]) == "" {
				continue // the quote between two blank lines is gone
			}
			keep = append(keep, lines[i])
		}
	}
	keep = cutSignature(re, keep)
	out := stripped{text: trimLines(keep), found: found}
	if kind == hardMark && x.rc.KeepForwards && depth < maxForwardDepth {
		if fw, ok := x.forwardAt(lines, bound, depth); ok {
			if out.text != "" {
				fw = out.text + "\n\n" + fw
			}
			out.text, out.forward = fw, true
		}
	}
	return out
}

// forwardAt renders the message forwarded at line i (a forward separator,
// or a quoted header block in a mail whose subject says it forwards), as
// its separator, its header lines and its body stripped of its own quotes.
// It reports false when no forward starts there, or when the forwarded
// message is our own mail.
func (x *extraction) forwardAt(lines []string, i, depth int) (string, bool) {
	re := x.re
	var head []string
	j := i
	if sep := strings.TrimSpace(lines[i]); isSeparator(re, sep) {
		if !re.forward.MatchString(sep) {
			return "", false
		}
		head = append(head, sep)
		j++
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j < len(lines) && isQuoteLine(lines[j]) {
			// The client cited the forwarded message (Apple Mail's
			// blockquote): read it one level of quoting down.
			lines = append(append([]string{}, lines[:j]...), unquote(lines[j:])...)
		}
	} else {
		if depth > 0 || !x.forwardBlock(lines, i) {
			return "", false
		}
		// Outlook's rule line above the header block opens the forward.
		if p := prevContent(lines, i, 1); p >= 0 && re.rule.MatchString(strings.TrimSpace(lines[p])) {
			head = append(head, strings.TrimSpace(lines[p]))
		}
	}
	if j >= len(lines) || !headerBlockAt(re, lines, j) && !re.headerFrom.MatchString(strings.TrimSpace(lines[j])) {
		if len(head) == 0 {
			return "", false
		}
	}
	// The header block: field lines (and wrapped values) up to the first
	// blank line once a field has been seen.
	fields := 0
	for ; j < len(lines); j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" {
			if fields > 0 {
				break
			}
			continue
		}
		isField := re.headerFrom.MatchString(l) || re.headerField.MatchString(l)
		if !isField && fields == 0 {
			break
		}
		if isField {
			fields++
			if re.headerFrom.MatchString(l) && fromOneOf(l, x.rc.OwnAddresses) {
				// Our own mail, forwarded back: a quote like any other.
				return "", false
			}
		}
		head = append(head, l)
	}
	if fields == 0 && len(head) == 0 {
		return "", false
	}
	body := x.strip(strings.Join(lines[j:], "\n"), depth+1)
	text := body.text
	if text == "" {
		text = trimLines(lines[j:])
	}
	out := strings.Join(head, "\n")
	if text != "" {
		out += "\n\n" + text
	}
	return out, true
}

// quotedForwardAt reports whether the quote starting at line i opens, one
// level down, with a forward separator.
func (x *extraction) quotedForwardAt(lines []string, i int) bool {
	for j := i; j < len(lines) && j < i+5; j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" {
			continue
		}
		if !isQuoteLine(l) {
			return false
		}
		l = strings.TrimSpace(strings.TrimLeft(l, " \t")[1:])
		if l == "" {
			continue
		}
		return isSeparator(x.re, l) && x.re.forward.MatchString(l)
	}
	return false
}

// forwardBlock reports whether the header block at line i (an Outlook
// "De : … Envoyé : … Objet :" block, no separator) opens a forwarded
// message rather than the quoted history: in a mail whose subject says it
// forwards, or when the block's message is not of this conversation — not
// from one of our addresses and its subject without any tag of the mail's
// own subject ("[ENT-42]", the desk's "[Desk #5678]").
func (x *extraction) forwardBlock(lines []string, i int) bool {
	if forwardSubject(x.rc.Subject) {
		return true
	}
	tags := subjectTags(x.rc.Subject)
	if len(tags) == 0 {
		return false
	}
	subject, from := "", ""
	for j, seen := i, 0; j < len(lines) && seen < 10; j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" {
			if seen > 0 {
				break
			}
			continue
		}
		seen++
		switch {
		case from == "" && x.re.headerFrom.MatchString(l):
			from = l
		case subject == "" && x.re.headerSubject.MatchString(l):
			subject = l
		}
	}
	if from == "" || subject == "" || fromOneOf(from, x.rc.OwnAddresses) {
		return false
	}
	ls := strings.ToLower(subject)
	for _, tag := range tags {
		if strings.Contains(ls, tag) {
			return false
		}
	}
	return true
}

// subjectTags lists the bracketed tags of a subject, lower-cased.
func subjectTags(subject string) []string {
	var out []string
	bracketed(strings.ToLower(subject), '[', ']', func(tag string) bool {
		if len(tag) > 3 && len(tag) <= 64 {
			out = append(out, tag)
		}
		return len(out) < 8
	})
	return out
}

// bracketed hands each open…close segment of s to each, brackets included,
// in order, until each returns false or no segment is left.
func bracketed(s string, open, close byte, each func(seg string) bool) {
	for {
		i := strings.IndexByte(s, open)
		if i < 0 {
			return
		}
		j := strings.IndexByte(s[i:], close)
		if j < 0 {
			return
		}
		if !each(s[i : i+j+1]) {
			return
		}
		s = s[i+j+1:]
	}
}

// unquote removes one level of "> " from the quoted lines at the start
// of lines (blank lines among them kept), up to the first line that is
// neither.
func unquote(lines []string) []string {
	out := make([]string, 0, len(lines))
	k := 0
	for ; k < len(lines); k++ {
		l := lines[k]
		if strings.TrimSpace(l) == "" {
			out = append(out, "")
			continue
		}
		if !isQuoteLine(l) {
			break
		}
		l = strings.TrimLeft(l, " \t")[1:]
		l = strings.TrimPrefix(l, " ")
		out = append(out, l)
	}
	return append(out, lines[k:]...)
}

// forwardSubject reports whether a subject says its mail forwards
// another ("TR:", "Fwd:", "WG:", "RV:", "I:"), after any "Re:".
func forwardSubject(subject string) bool {
	s := strings.ToLower(strings.TrimSpace(subject))
	for n := 0; n < 5 && s != ""; n++ {
		word, rest, ok := strings.Cut(s, ":")
		if !ok || len(word) > 6 {
			return false
		}
		switch strings.TrimSpace(word) {
		case "tr", "fw", "fwd", "wg", "rv", "i", "enc", "doorst":
			return true
		case "re", "aw", "sv", "ref", "rép", "rep", "antw":
			s = strings.TrimSpace(rest)
		default:
			return false
		}
	}
	return false
}

// fromOneOf reports whether a header line names one of addrs.
func fromOneOf(line string, addrs []string) bool {
	l := strings.ToLower(line)
	for _, a := range addrs {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" && strings.Contains(l, a) {
			return true
		}
	}
	return false
}

// hasContentExcept is hasContent for the lines not dropped.
func hasContentExcept(lines []string, drop map[int]bool) bool {
	for i, l := range lines {
		if !drop[i] && strings.TrimSpace(l) != "" {
			return true
		}
	}
	return false
}

// prevContent returns the index of the last non-blank line before i,
// skipping at most maxBlank blank lines, or -1.
func prevContent(lines []string, i, maxBlank int) int {
	blank := 0
	for j := i - 1; j >= 0; j-- {
		if strings.TrimSpace(lines[j]) != "" {
			return j
		}
		if blank++; blank > maxBlank {
			return -1
		}
	}
	return -1
}

func looksLikeAttribution(line string) bool {
	l := strings.TrimSpace(line)
	if len(l) > 300 || !strings.HasSuffix(l, ":") {
		return false
	}
	if strings.Contains(l, "@") {
		return true
	}
	for i := 0; i+3 < len(l); i++ {
		// A time such as 10:02 or 10h02.
		if isDigit(l[i]) && (l[i+1] == ':' || l[i+1] == 'h') && isDigit(l[i+2]) && isDigit(l[i+3]) {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isSeparator reports whether a trimmed line is a "-----Original
// Message-----" style separator; the cheap test spares the pattern most
// lines.
func isSeparator(re *replyRes, trimmed string) bool {
	if trimmed == "" || len(trimmed) > 1000 {
		return false
	}
	switch trimmed[0] {
	case '-', 'B', 'b', 'D', 'd', 'A', 'a':
		return re.separator.MatchString(trimmed)
	}
	return false
}

// isReplyAbove reports whether a trimmed line asks to reply above it.
func isReplyAbove(re *replyRes, trimmed string) bool {
	if len(trimmed) > 300 {
		return false
	}
	l := strings.ToLower(trimmed)
	if !strings.Contains(l, "above") && !strings.Contains(l, "dessus") {
		return false
	}
	return re.replyAbove.MatchString(trimmed)
}

func isQuoteLine(line string) bool {
	return strings.HasPrefix(strings.TrimLeft(line, " \t"), ">")
}

func hasContent(lines []string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			return true
		}
	}
	return false
}

// attributionAt returns how many lines (1 to 3) the attribution line
// starting at i spans, or 0. Clients wrap long ones ("On …, Name <\n
// addr> wrote:").
func attributionAt(re *replyRes, lines []string, i int) int {
	first := strings.TrimSpace(lines[i])
	if len(first) > 400 || (!strings.HasSuffix(first, ":") && !opensAttribution(first)) {
		// Cheap test first: the patterns are costly on every line.
		return 0
	}
	joined := ""
	for k := 0; k < 3 && i+k < len(lines); k++ {
		part := strings.TrimSpace(lines[i+k])
		if part == "" {
			return 0
		}
		if k == 0 {
			joined = part
		} else {
			joined += " " + part
		}
		if len(joined) > 400 {
			return 0
		}
		if re.attribution.MatchString(joined) {
			return k + 1
		}
		if k == 0 && re.wroteOnly.MatchString(joined) && nextIsQuote(lines, i+1) {
			return 1
		}
		if k == 0 && !re.attribution.MatchString(joined+" wrote:") {
			// The first line does not open an attribution: no need to
			// join the next ones.
			return 0
		}
	}
	return 0
}

// opensAttribution reports whether a line starts with a word that opens
// an attribution in a language we know ("On", "Le", "Am", …).
func opensAttribution(line string) bool {
	word, _, ok := strings.Cut(line, " ")
	if !ok || len(word) > 3 {
		return false
	}
	switch strings.ToLower(word) {
	case "on", "le", "am", "el", "il", "op", "den":
		return true
	}
	return false
}

func nextIsQuote(lines []string, from int) bool {
	for j := from; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) == "" {
			continue
		}
		return isQuoteLine(lines[j])
	}
	return false
}

// headerBlockAt reports whether a quoted message's header block (as
// Outlook writes it: From, Sent, To, Subject; in any order after From, in
// several languages, with or without blank lines) starts at line i.
func headerBlockAt(re *replyRes, lines []string, i int) bool {
	first := strings.TrimLeft(strings.TrimSpace(lines[i]), "*")
	if first == "" || !strings.ContainsRune("FfDdVvOo", rune(first[0])) || !strings.Contains(first, ":") {
		return false
	}
	first = strings.TrimSpace(lines[i])
	if !re.headerFrom.MatchString(first) {
		return false
	}
	if re.oneLineHdr.MatchString(first) {
		return true
	}
	fields, keys := 0, 0
	seen := 0
	for j := i + 1; j < len(lines) && seen < 8; j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" {
			continue
		}
		seen++
		if !re.headerField.MatchString(l) {
			// A header value wrapped onto the next line is fine; a
			// paragraph of prose is not.
			if fields == 0 {
				return false
			}
			continue
		}
		fields++
		if re.headerKey.MatchString(l) {
			keys++
		}
	}
	return fields >= 2 && keys >= 1
}

// interleaved reports whether, from line start on (just below the
// boundary line or attribution), new text alternates with quoted lines (an
// inline answer) rather than the quote running to the end.
func interleaved(re *replyRes, lines []string, start int) bool {
	sawOther := false
	for i := start; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if trimmed == "" {
			continue
		}
		if isSeparator(re, trimmed) || headerBlockAt(re, lines, i) {
			return false
		}
		if isQuoteLine(lines[i]) {
			if sawOther {
				return true
			}
			continue
		}
		if attributionAt(re, lines, i) == 0 && !re.mobileSig.MatchString(trimmed) && !isSigDelimiter(lines[i]) {
			sawOther = true
		}
		if isSigDelimiter(lines[i]) {
			return false
		}
	}
	return false
}

func isSigDelimiter(line string) bool {
	// "-- " by the book; many clients trim the space.
	return strings.TrimRight(line, " \t") == "--"
}

// cutSignature drops the signature: from a "-- " line, or from a
// "Sent from my iPhone" style line near the end.
func cutSignature(re *replyRes, lines []string) []string {
	for i, l := range lines {
		if isSigDelimiter(l) && hasContent(lines[:i]) {
			return lines[:i]
		}
	}
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if len(t) > 100 || !re.mobileSig.MatchString(t) {
			continue
		}
		after := 0
		for _, m := range lines[i+1:] {
			if strings.TrimSpace(m) != "" {
				after++
			}
		}
		if after <= 4 {
			return lines[:i]
		}
	}
	return lines
}

// trimLines trims trailing white space off every line and blank lines
// off both ends.
func trimLines(lines []string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimRightFunc(l, unicode.IsSpace)
	}
	start, end := 0, len(out)
	for start < end && out[start] == "" {
		start++
	}
	for end > start && out[end-1] == "" {
		end--
	}
	return strings.Join(out[start:end], "\n")
}
