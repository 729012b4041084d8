package statuspage

import (
	"html/template"
	"net/url"
	"time"

	"supportbridge/bridge"
)

// The pages' formatting helpers, named in the templates' FuncMap.

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

func formatPerson(p *bridge.Person) string {
	if p == nil {
		return "—"
	}
	return p.Label()
}

// ticketLink is the path of a ticket's page; the id is escaped as a
// path segment, so that no id can point the link elsewhere.
func ticketLink(id string) string { return "/tickets/" + url.PathEscape(id) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// templates are the pages. html/template escapes every value by
// context; nothing is marked safe, and there is no script at all.
var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":    formatTime,
	"whenPtr": formatTimePtr,
	"person":  formatPerson,
	"link":    ticketLink,
	"size":    bridge.FormatBytes,
	"yesno":   yesNo,
	"deref":   func(p bridge.Person) *bridge.Person { return &p },
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.}} — supportbridge</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:1px solid #d5d9e0}
table{border-collapse:collapse;background:#fff;margin:.3em 0}
th,td{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#6b7280}.bad{color:#b42318;font-weight:600}.ok{color:#067647;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:13px/1.4 ui-monospace,monospace}
.exchange{background:#fff;border:1px solid #d5d9e0;padding:.5em .8em;margin:.5em 0}
.exchange.desk{border-left:4px solid #2e90fa}.exchange.ent{border-left:4px solid #12b76a}
a{color:#175cd3}
</style></head><body>{{end}}

{{define "foot"}}</body></html>{{end}}

{{define "message"}}{{template "head" .Title}}
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{template "foot"}}{{end}}

{{define "login"}}{{template "head" .Title}}
<h1>{{.Title}}</h1><p>{{.Text}}</p>
<form method="post" action="/login"><label>API token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form>
{{template "foot"}}{{end}}

{{define "status"}}{{template "head" "Status"}}
<h1>supportbridge</h1>
<p class="muted">Read-only status of this replica, {{when .Now}}.</p>

<h2>Job queue</h2>
{{if .DepthsErr}}<p class="bad">The queue cannot be read right now.</p>{{else}}
<table id="queue"><tr><th>pending</th><th>active</th><th>retry</th><th>dead</th></tr>
<tr><td class="n">{{.Depths.Pending}}</td><td class="n">{{.Depths.Active}}</td>
<td class="n">{{.Depths.Retry}}</td><td class="n{{if .Depths.Dead}} bad{{end}}">{{.Depths.Dead}}</td></tr></table>{{end}}

<h2>Mailbox (IMAP)</h2>
{{with .IMAP}}{{if not .Configured}}<p class="muted">No mailbox is read (imap.addr is empty).</p>{{else}}
<table id="imap">
<tr><th>connected</th><td>{{if .Connected}}<span class="ok">yes</span>{{else}}no{{end}}</td></tr>
<tr><th>idle</th><td>{{yesno .Idle}}</td></tr>
<tr><th>lease held by this replica</th><td>{{yesno .LeaseHeld}}</td></tr>
<tr><th>last success</th><td>{{when .LastSuccess}}</td></tr>
<tr><th>last error</th><td>{{if .LastError}}<span class="bad">{{.LastError}}</span>{{else}}—{{end}}</td></tr>
<tr><th>processed / quarantined / retried</th><td>{{.Processed}} / {{.Quarantined}} / {{.Retried}}</td></tr>
</table>{{end}}{{end}}

<h2>Recent tickets</h2>
{{if .TicketsErr}}<p class="bad">The tickets cannot be read right now.</p>
{{else if not .Tickets}}<p class="muted">No tickets.</p>{{else}}
<table id="tickets"><tr><th>id</th><th>structure</th><th>subject</th><th>status</th><th>escalation</th><th>updated</th></tr>
{{range .Tickets}}<tr><td><a href="{{link .ID}}">{{.ID}}</a></td><td>{{.StructureID}}</td><td>{{.Subject}}</td>
<td>{{.Status}}</td><td{{if eq .Escalation.Status "failed"}} class="bad"{{end}}>{{.Escalation.Status}}</td><td>{{when .UpdatedAt}}</td></tr>
{{end}}</table>
{{if .NextCursor}}<p><a href="/?cursor={{.NextCursor}}">Older tickets</a></p>{{end}}{{end}}

<h2>Dead letters</h2>
{{if .DeadErr}}<p class="bad">The dead letters cannot be read right now.</p>
{{else if not .Dead}}<p class="muted">None.</p>{{else}}
{{if gt .DeadTotal (len .Dead)}}<p>The first {{len .Dead}} of {{.DeadTotal}}.</p>{{end}}
<table id="dead"><tr><th>job</th><th>kind</th><th>ticket</th><th>failed</th><th>last error</th></tr>
{{range .Dead}}<tr><td>{{.ID}}</td><td>{{.Kind}}</td><td>{{if .TicketID}}<a href="{{link .TicketID}}">{{.TicketID}}</a>{{else}}—{{end}}</td>
<td>{{when .FailedAt}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>{{end}}

<h2>Quarantined mails</h2>
{{if .QuarantErr}}<p class="bad">The quarantine cannot be read right now.</p>
{{else if not .Quarantine}}<p class="muted">None.</p>{{else}}
{{if gt .QuarantTotal (len .Quarantine)}}<p>The first {{len .Quarantine}} of {{.QuarantTotal}}.</p>{{end}}
<table id="quarantine"><tr><th>received</th><th>from</th><th>subject</th><th>reason</th></tr>
{{range .Quarantine}}<tr><td>{{when .At}}</td><td>{{.From}}</td><td>{{.Subject}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>{{end}}

<h2>Demands no referent hears of</h2>
{{if .NoRefErr}}<p class="bad">This list cannot be read right now.</p>
{{else if not .NoReferent}}<p class="muted">None.</p>{{else}}
<p>{{.NoRefTotal}} demand(s) created in a structure with no referent up its chain: give the structure a referent (structure.upserted).{{if gt .NoRefTotal (len .NoReferent)}} The newest {{len .NoReferent}}:{{end}}</p>
<ul id="noreferent">{{range .NoReferent}}<li><a href="{{link .}}">{{.}}</a></li>{{end}}</ul>{{end}}
{{template "foot"}}{{end}}

{{define "ticket"}}{{template "head" (printf "Ticket %s" .V.ID)}}
<p><a href="/">← status</a></p>
{{with .V}}
<h1>Ticket {{.ID}}: {{.Subject}}</h1>
<table id="fields">
<tr><th>structure</th><td>{{.StructureID}}</td></tr>
<tr><th>owner</th><td>{{person (deref .Owner)}}{{if .Owner.Profile}} ({{.Owner.Profile}}){{end}}</td></tr>
<tr><th>category</th><td>{{.Category.Label}}{{if .Category.App}} ({{.Category.App}}){{end}}</td></tr>
<tr><th>status</th><td>{{.Status}}</td></tr>
<tr><th>locale</th><td>{{.Locale}}</td></tr>
<tr><th>created</th><td>{{when .CreatedAt}}</td></tr>
<tr><th>updated</th><td>{{when .UpdatedAt}}</td></tr>
<tr><th>description</th><td><pre>{{.Description}}</pre></td></tr>
<tr><th>attachments</th><td>{{range .Attachments}}{{.Filename}} ({{.ContentType}}, {{size .Size}})<br>{{else}}—{{end}}</td></tr>
</table>

<h2>Escalation</h2>
<table id="escalation">
<tr><th>status</th><td{{if eq .Escalation.Status "failed"}} class="bad"{{end}}>{{.Escalation.Status}}</td></tr>
<tr><th>desk reference</th><td>{{or .Escalation.DeskReference "—"}}</td></tr>
<tr><th>desk status</th><td>{{with .Escalation.DeskStatus}}{{.Status}} ({{when .At}}){{else}}—{{end}}</td></tr>
<tr><th>escalated</th><td>{{whenPtr .Escalation.EscalatedAt}}{{with .Escalation.EscalatedBy}} by {{person .}}{{end}}</td></tr>
<tr><th>last error</th><td>{{or .Escalation.LastError "—"}}</td></tr>
</table>

<h2>Exchanges</h2>
{{range .Exchanges}}<div class="exchange {{.Origin}}">
<p><strong>{{.Origin}}</strong> · {{person (deref .Author)}} · {{when .CreatedAt}}</p>
<pre>{{.Body}}</pre>
{{range .Attachments}}<p class="muted">attachment: {{.Filename}} ({{.ContentType}}, {{size .Size}})</p>{{end}}
</div>
{{else}}<p class="muted">None.</p>{{end}}

<h2>Events</h2>
{{if .Events}}<table id="events"><tr><th>at</th><th>type</th><th>actor</th><th>detail</th></tr>
{{range .Events}}<tr><td>{{when .At}}</td><td>{{.Type}}</td><td>{{person .Actor}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}
{{end}}
{{template "foot"}}{{end}}
`))
