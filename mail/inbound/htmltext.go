package inbound

import (
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLToText converts an HTML body to plain text for people: paragraphs,
// line breaks, divs and list items become new lines, links read
// "text (url)" when the url says something the text does not, quoted
// blocks are prefixed with "> ", scripts, styles and the head are dropped,
// entities are decoded and runs of white space collapsed.
func HTMLToText(s string) string {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		// The parser only gives up on absurd nesting: fall back to the
		// text between tags.
		return tokenText(s)
	}
	return nodeText(doc)
}

// nodeText renders a parsed document or subtree as text.
func nodeText(n *html.Node) string {
	var w textWriter
	w.walk(n, 0)
	return cleanText(w.b.String())
}

// textWriter accumulates text, collapsing white space and keeping track
// of the new lines it wrote so that blocks get one (or for paragraphs two)
// line breaks however they nest.
type textWriter struct {
	b     strings.Builder
	space bool // a space is due before the next word
	nl    int  // new lines at the end of b
	pre   int  // inside <pre>
}

// maxHTMLDepth bounds recursion on hostile nesting; html.Parse already
// refuses more than 512 open elements.
const maxHTMLDepth = 600

func (w *textWriter) text(s string) {
	for _, r := range s {
		if unicode.IsSpace(r) || r == '\u00a0' || r == '\u202f' {
			w.space = true
			continue
		}
		if r == '\u200b' || r == '\ufeff' {
			continue
		}
		if w.space && w.nl == 0 && w.b.Len() > 0 {
			w.b.WriteByte(' ')
		}
		w.space = false
		w.b.WriteRune(r)
		w.nl = 0
	}
}

func (w *textWriter) raw(s string) {
	for _, r := range s {
		switch r {
		case '\r':
			continue
		case '\u00a0', '\u202f':
			r = ' '
		case '\u200b', '\ufeff':
			continue
		}
		w.b.WriteRune(r)
		if r == '\n' {
			w.nl++
		} else {
			w.nl = 0
		}
	}
	w.space = false
}

func (w *textWriter) br() {
	w.b.WriteByte('\n')
	w.nl++
	w.space = false
}

// block ends the current line (n=1) or paragraph (n=2), unless already
// done or nothing was written yet.
func (w *textWriter) block(n int) {
	w.space = false
	if w.b.Len() == 0 {
		return
	}
	for w.nl < n {
		w.b.WriteByte('\n')
		w.nl++
	}
}

func (w *textWriter) walk(n *html.Node, depth int) {
	if depth > maxHTMLDepth {
		return
	}
	switch n.Type {
	case html.TextNode:
		if w.pre > 0 {
			w.raw(n.Data)
		} else {
			w.text(n.Data)
		}
		return
	case html.DocumentNode:
		w.children(n, depth)
		return
	case html.ElementNode:
	default:
		return
	}

	switch n.DataAtom {
	case atom.Script, atom.Style, atom.Head, atom.Title, atom.Noscript, atom.Template,
		atom.Svg, atom.Object, atom.Iframe, atom.Math, atom.Select, atom.Button:
		return
	case atom.Br:
		w.br()
	case atom.P:
		if !hasClass(n, "MsoNormal") {
			w.block(2)
			w.children(n, depth)
			w.block(2)
			break
		}
		// Word's paragraphs have no margin: each is one line, and an
		// empty one (&nbsp;) is how Outlook writes a blank line.
		w.block(1)
		before := w.b.Len()
		w.children(n, depth)
		if w.b.Len() == before && w.nl < 2 && w.b.Len() > 0 {
			w.br()
		}
		w.block(1)
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		w.block(2)
		w.children(n, depth)
		w.block(2)
	case atom.Blockquote:
		var sub textWriter
		sub.children(n, depth)
		quoted := cleanText(sub.b.String())
		w.block(1)
		if quoted != "" {
			for _, line := range strings.Split(quoted, "\n") {
				if line == "" {
					w.raw(">\n")
				} else {
					w.raw("> " + line + "\n")
				}
			}
		}
		w.block(1)
	case atom.Pre:
		w.block(1)
		w.pre++
		w.children(n, depth)
		w.pre--
		w.block(1)
	case atom.Ul, atom.Ol:
		w.block(1)
		num := 0
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.DataAtom == atom.Li {
				num++
				w.block(1)
				if n.DataAtom == atom.Ol {
					w.text(strconv.Itoa(num) + ". ")
				} else {
					w.text("- ")
				}
				w.children(c, depth+1)
				w.block(1)
				continue
			}
			w.walk(c, depth+1)
		}
		w.block(1)
	case atom.Li:
		w.block(1)
		w.text("- ")
		w.children(n, depth)
		w.block(1)
	case atom.A:
		var sub textWriter
		sub.children(n, depth)
		label := strings.Join(strings.Fields(sub.b.String()), " ")
		href := strings.TrimSpace(htmlAttr(n, "href"))
		if label == "" {
			return
		}
		w.text(label)
		if linkWorthShowing(href, label) {
			w.text(" (" + href + ")")
		}
	case atom.Td, atom.Th:
		w.space = true
		w.children(n, depth)
		w.space = true
	case atom.Img:
		return
	case atom.Div, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Address,
		atom.Center, atom.Form, atom.Fieldset, atom.Table, atom.Tr, atom.Dl, atom.Dt,
		atom.Dd, atom.Figure, atom.Figcaption, atom.Main, atom.Nav, atom.Aside, atom.Hr,
		atom.Tbody, atom.Thead, atom.Tfoot, atom.Caption, atom.Body, atom.Html:
		w.block(1)
		w.children(n, depth)
		w.block(1)
	default:
		w.children(n, depth)
	}
}

func (w *textWriter) children(n *html.Node, depth int) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c, depth+1)
	}
}

// linkWorthShowing reports whether a link's url adds to its text:
// not when the text is the url (or the address of a mailto), and never for
// anchors, scripts or embedded parts.
func linkWorthShowing(href, label string) bool {
	if href == "" || strings.HasPrefix(href, "#") {
		return false
	}
	lower := strings.ToLower(href)
	for _, p := range []string{"javascript:", "cid:", "data:", "vbscript:"} {
		if strings.HasPrefix(lower, p) {
			return false
		}
	}
	return urlKey(href) != urlKey(label)
}

func urlKey(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"mailto:", "tel:", "https://", "http://", "www."} {
		s = strings.TrimPrefix(s, p)
	}
	return strings.TrimRight(s, "/")
}

func htmlAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if strings.EqualFold(a.Key, key) {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(htmlAttr(n, "class")) {
		if strings.EqualFold(c, class) {
			return true
		}
	}
	return false
}

// cleanText trims the end of every line, keeps at most one blank line in a row and
// trims the whole.
func cleanText(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := false
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// tokenText is the fallback converter: text between tags, with block
// tags as line breaks.
func tokenText(s string) string {
	var w textWriter
	z := html.NewTokenizer(strings.NewReader(s))
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return cleanText(w.b.String())
		case html.TextToken:
			if skip == 0 {
				w.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				skip++
			case "br":
				w.br()
			case "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "table":
				w.block(1)
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				if skip > 0 {
					skip--
				}
			case "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table":
				w.block(1)
			}
		}
	}
}

// htmlReplyText cuts an HTML reply at the first mark a mail client puts
// before the quoted message and returns the text above it; found is false
// when the HTML has no such mark.
func htmlReplyText(s string) (text string, found bool) {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		return "", false
	}
	m := findQuoteMark(doc, 0)
	if m == nil {
		return "", false
	}
	if strings.EqualFold(htmlAttr(m, "id"), "divRplyFwdMsg") {
		// Outlook puts an <hr> before its reply header block.
		prev := m.PrevSibling
		for prev != nil && prev.Type == html.TextNode && strings.TrimSpace(prev.Data) == "" {
			prev = prev.PrevSibling
		}
		if prev != nil && prev.Type == html.ElementNode && prev.DataAtom == atom.Hr {
			m = prev
		}
	}
	cutFrom(m)
	return nodeText(doc), true
}

// findQuoteMark returns the first node, in document order, that starts
// a quoted message in the HTML of a known client.
func findQuoteMark(n *html.Node, depth int) *html.Node {
	if depth > maxHTMLDepth {
		return nil
	}
	if n.Type == html.ElementNode && isQuoteMark(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if m := findQuoteMark(c, depth+1); m != nil {
			return m
		}
	}
	return nil
}

func isQuoteMark(n *html.Node) bool {
	id := strings.ToLower(htmlAttr(n, "id"))
	class := strings.ToLower(htmlAttr(n, "class"))
	switch {
	case hasClass(n, "gmail_quote"), hasClass(n, "gmail_quote_container"):
		return true // Gmail
	case n.DataAtom == atom.Blockquote && strings.EqualFold(strings.TrimSpace(htmlAttr(n, "type")), "cite"):
		return true // Apple Mail, Thunderbird, many others
	case id == "divrplyfwdmsg", id == "appendonsend":
		return true // Outlook (web, new Outlook, mobile)
	case id == "olk_src_body_section":
		return true // Outlook for Mac
	case id == "zwchr":
		return true // Zimbra's <hr id="zwchr">
	case hasClass(n, "moz-cite-prefix"):
		return true // Thunderbird's attribution line
	case strings.Contains(class, "yahoo_quoted"), strings.Contains(id, "yahoo_quoted"):
		return true // Yahoo Mail
	}
	return false
}

// cutFrom removes n and everything after it in document order.
func cutFrom(n *html.Node) {
	for cur := n; cur != nil && cur.Parent != nil; cur = cur.Parent {
		for s := cur.NextSibling; s != nil; {
			next := s.NextSibling
			cur.Parent.RemoveChild(s)
			s = next
		}
	}
	if n.Parent != nil {
		n.Parent.RemoveChild(n)
	}
}
