package main

import (
	"context"

	"supportbridge/bridge"
	"supportbridge/webhook/statuspage"
)

// statusPageSource shows the daemon on the HTTP status page. It reads the
// daemon's parts at each call, so that it can be built before they are all
// wired.
type statusPageSource struct{ d *daemon }

var _ statuspage.Source = statusPageSource{}

func (s statusPageSource) Depths(context.Context) (statuspage.QueueDepths, error) {
	dp, err := s.d.queue.Depths()
	if err != nil {
		return statuspage.QueueDepths{}, err
	}
	return statuspage.QueueDepths{Pending: dp.Pending, Active: dp.Active, Retry: dp.Retry,
		Dead: dp.Dead}, nil
}

func (s statusPageSource) Dead(context.Context) ([]statuspage.DeadJob, error) {
	jobs, err := s.d.queue.Dead()
	if err != nil {
		return nil, err
	}
	out := make([]statuspage.DeadJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, statuspage.DeadJob{ID: j.ID, Kind: j.Kind, TicketID: j.TicketID,
			LastError: j.LastError, FailedAt: j.FailedAt})
	}
	return out, nil
}

func (s statusPageSource) Quarantined(ctx context.Context) ([]bridge.QuarantinedMail, error) {
	return s.d.store.Quarantined(ctx)
}

func (s statusPageSource) IMAPState() statuspage.MailboxState {
	if s.d.reader == nil {
		return statuspage.MailboxState{}
	}
	return statuspage.MailboxState{Configured: true, MailboxState: s.d.reader.State()}
}

func (s statusPageSource) Tickets(ctx context.Context, q bridge.ListQuery) (bridge.TicketPage, error) {
	return s.d.svc.Tickets(ctx, q)
}

func (s statusPageSource) Ticket(ctx context.Context, id string) (bridge.TicketView, error) {
	return s.d.svc.Ticket(ctx, id)
}

func (s statusPageSource) NoReferent(ctx context.Context, limit int) ([]string, int64, error) {
	return s.d.store.NoReferentTickets(ctx, limit)
}
