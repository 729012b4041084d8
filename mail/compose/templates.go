package compose

import (
	"fmt"
	"strings"
	"time"

	"supportbridge/bridge"
)

// labels is one locale's message catalog for outbound desk mail. The
// templates take every word from here, so adding a locale is adding a
// catalog.
type labels struct {
	Lang          string // html lang attribute
	Colon         string // "Objet : " in French, "Subject: " in English
	ReplyAbove    string // %s: the [ENT-id] tag
	EscTitle      string // %s: the [ENT-id] tag
	FuTitle       string // %s: the [ENT-id] tag
	FuNoteTitle   string // %s: the [ENT-id] tag
	Subject       string
	School        string
	UAI           string
	App           string
	Requester     string
	EscalatedBy   string
	Ticket        string
	Created       string
	Status        string
	Description   string
	NoDescription string
	Attached      string
	LeftOut       string
	History       string
	NoHistory     string
	Author        string
	Date          string
	Files         string
	OriginENT     string
	OriginDesk    string
	// FileFallback names an attachment whose name is unusable:
	// FileFallback-N.
	FileFallback string

	Months     [12]string
	Days       [7]string
	At         string // between date and time
	Units      [4]string
	DecimalSep string
	Statuses   map[bridge.Status]string
	Profiles   map[string]string
}

// catalog returns the words of locale's language (bridge.LangOf).
func catalog(locale string) labels { return catalogs[bridge.LangOf(locale)] }

// date formats t in the catalog's language: "lundi 3 mars 2025 à 14:05".
func (l labels) date(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(loc)
	return fmt.Sprintf("%s %d %s %d %s %02d:%02d",
		l.Days[t.Weekday()], t.Day(), l.Months[t.Month()-1], t.Year(), l.At, t.Hour(), t.Minute())
}

// size formats n bytes: "850 octets", "12,3 Ko", "2,5 Mo".
func (l labels) size(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d %s", n, l.Units[0])
	}
	v := float64(n) / 1024
	u := 1
	for v >= 1024 && u < len(l.Units)-1 {
		v /= 1024
		u++
	}
	return strings.Replace(fmt.Sprintf("%.1f", v), ".", l.DecimalSep, 1) + " " + l.Units[u]
}

func (l labels) status(s bridge.Status) string {
	if v, ok := l.Statuses[s]; ok {
		return v
	}
	return oneLine(string(s))
}

func (l labels) profile(p string) string {
	if v, ok := l.Profiles[strings.ToLower(strings.TrimSpace(p))]; ok {
		return v
	}
	return oneLine(p)
}

// The templates are constants rather than embedded files so that the package
// holds no variable state. Text templates are rendered as is: every value in
// them has been cleaned of control characters first (oneLine, cleanBody).

const escalationText = `{{printf .L.ReplyAbove .H.Tag}}

{{printf .L.EscTitle .H.Tag}}

{{.L.Subject}}{{.L.Colon}}{{.H.Subject}}
{{.L.School}}{{.L.Colon}}{{.H.School}}{{if .H.UAI}} ({{.L.UAI}} {{.H.UAI}}){{end}}
{{.L.App}}{{.L.Colon}}{{.App}}
{{.L.Requester}}{{.L.Colon}}{{template "person" .Requester}}
{{.L.EscalatedBy}}{{.L.Colon}}{{template "person" .EscalatedBy}}
{{.L.Ticket}}{{.L.Colon}}{{.H.TicketID}}
{{.L.Created}}{{.L.Colon}}{{.Created}}
{{.L.Status}}{{.L.Colon}}{{.H.Status}}

{{.L.Description}}
{{rule .L.Description}}
{{if .Description}}{{.Description}}{{else}}{{.L.NoDescription}}{{end}}
{{- template "files" .}}

{{.L.History}}
{{rule .L.History}}
{{- range .Exchanges}}

[{{.Origin}}] {{.Author}}{{if .Email}} <{{.Email}}>{{end}} — {{.Date}}
{{.Body}}
{{- if .Files}}
{{$.L.Files}}{{$.L.Colon}}{{join .Files ", "}}
{{- end}}
{{- else}}
{{.L.NoHistory}}
{{- end}}
`

const escalationHTML = `<!DOCTYPE html>
<html lang="{{.L.Lang}}">
<head><meta charset="utf-8"><title>{{.H.Tag}} {{.H.Subject}}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">
<p style="color:#666">{{printf .L.ReplyAbove .H.Tag}}</p>
<h2 style="font-size:18px">{{printf .L.EscTitle .H.Tag}}</h2>
<table cellpadding="4" style="border-collapse:collapse">
<tr><th align="left">{{.L.Subject}}</th><td>{{.H.Subject}}</td></tr>
<tr><th align="left">{{.L.School}}</th><td>{{.H.School}}{{if .H.UAI}} ({{.L.UAI}} {{.H.UAI}}){{end}}</td></tr>
<tr><th align="left">{{.L.App}}</th><td>{{.App}}</td></tr>
<tr><th align="left">{{.L.Requester}}</th><td>{{template "person" .Requester}}</td></tr>
<tr><th align="left">{{.L.EscalatedBy}}</th><td>{{template "person" .EscalatedBy}}</td></tr>
<tr><th align="left">{{.L.Ticket}}</th><td>{{.H.TicketID}}</td></tr>
<tr><th align="left">{{.L.Created}}</th><td>{{.Created}}</td></tr>
<tr><th align="left">{{.L.Status}}</th><td>{{.H.Status}}</td></tr>
</table>
<h3 style="font-size:16px">{{.L.Description}}</h3>
<div style="white-space:pre-wrap">{{if .Description}}{{.Description}}{{else}}{{.L.NoDescription}}{{end}}</div>
{{- template "files" .}}
<h3 style="font-size:16px">{{.L.History}}</h3>
{{- range .Exchanges}}
<div style="border-left:3px solid #ccc;margin:8px 0;padding-left:8px">
<p style="color:#666;margin:0">[{{.Origin}}] <b>{{.Author}}</b>{{if .Email}} &lt;{{.Email}}&gt;{{end}} — {{.Date}}</p>
<div style="white-space:pre-wrap">{{.Body}}</div>
{{- if .Files}}
<p style="color:#666;margin:0">{{$.L.Files}}{{$.L.Colon}}{{join .Files ", "}}</p>
{{- end}}
</div>
{{- else}}
<p>{{.L.NoHistory}}</p>
{{- end}}
</body>
</html>
`

const followUpText = `{{printf .L.ReplyAbove .H.Tag}}

{{if .Comment}}{{printf .L.FuTitle .H.Tag}}{{else}}{{printf .L.FuNoteTitle .H.Tag}}{{end}}
{{.L.Subject}}{{.L.Colon}}{{.H.Subject}}
{{.L.School}}{{.L.Colon}}{{.H.School}}{{if .H.UAI}} ({{.L.UAI}} {{.H.UAI}}){{end}}
{{.L.Status}}{{.L.Colon}}{{.H.Status}}
{{- with .Comment}}

{{$.L.Author}}{{$.L.Colon}}{{.Author}}{{if .Email}} <{{.Email}}>{{end}} ({{.Origin}})
{{$.L.Date}}{{$.L.Colon}}{{.Date}}

{{.Body}}
{{- else}}

{{.Note}}
{{- end}}
{{- template "files" .}}
`

const followUpHTML = `<!DOCTYPE html>
<html lang="{{.L.Lang}}">
<head><meta charset="utf-8"><title>{{.H.Tag}} {{.H.Subject}}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">
<p style="color:#666">{{printf .L.ReplyAbove .H.Tag}}</p>
<h2 style="font-size:18px">{{if .Comment}}{{printf .L.FuTitle .H.Tag}}{{else}}{{printf .L.FuNoteTitle .H.Tag}}{{end}}</h2>
<table cellpadding="4" style="border-collapse:collapse">
<tr><th align="left">{{.L.Subject}}</th><td>{{.H.Subject}}</td></tr>
<tr><th align="left">{{.L.School}}</th><td>{{.H.School}}{{if .H.UAI}} ({{.L.UAI}} {{.H.UAI}}){{end}}</td></tr>
<tr><th align="left">{{.L.Status}}</th><td>{{.H.Status}}</td></tr>
{{- with .Comment}}
<tr><th align="left">{{$.L.Author}}</th><td>{{.Author}}{{if .Email}} &lt;{{.Email}}&gt;{{end}} ({{.Origin}})</td></tr>
<tr><th align="left">{{$.L.Date}}</th><td>{{.Date}}</td></tr>
{{- end}}
</table>
{{- with .Comment}}
<div style="white-space:pre-wrap;margin-top:12px">{{.Body}}</div>
{{- else}}
<div style="white-space:pre-wrap;margin-top:12px">{{.Note}}</div>
{{- end}}
{{- template "files" .}}
</body>
</html>
`

// textParts and htmlParts are the pieces the mails share, defined once and
// parsed with each mail's template: a person, the attached and left-out
// files.
const textParts = `{{define "person"}}{{.Name}}{{if .Email}} <{{.Email}}>{{end}}{{if .Profile}} ({{.Profile}}){{end}}{{end}}{{define "files"}}{{- if .Attached}}

{{.L.Attached}}
{{rule .L.Attached}}
{{- range .Attached}}
- {{.Name}} ({{.Size}})
{{- end}}
{{- end}}
{{- if .LeftOut}}

{{.L.LeftOut}}
{{rule .L.LeftOut}}
{{- range .LeftOut}}
- {{.Name}} ({{.Size}})
{{- end}}
{{- end}}{{end}}`

const htmlParts = `{{define "person"}}{{.Name}}{{if .Email}} &lt;{{.Email}}&gt;{{end}}{{if .Profile}} ({{.Profile}}){{end}}{{end}}{{define "files"}}{{- if .Attached}}
<h3 style="font-size:16px">{{.L.Attached}}</h3>
<ul>{{range .Attached}}<li>{{.Name}} ({{.Size}})</li>{{end}}</ul>
{{- end}}
{{- if .LeftOut}}
<h3 style="font-size:16px">{{.L.LeftOut}}</h3>
<ul>{{range .LeftOut}}<li>{{.Name}} ({{.Size}})</li>{{end}}</ul>
{{- end}}{{end}}`
