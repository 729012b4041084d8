package inbound

import "sync"

// KnownDeskProducts returns the catalogue of help-desk products, compiled
// once. Each product's conventions live in a file of its own
// (desk_<name>.go), from its templates and mails as it sends them; the
// order is the order in which auto tries them.
var KnownDeskProducts = sync.OnceValue(func() *DeskProducts {
	return &DeskProducts{list: []*DeskProduct{
		deskGLPI(), deskRT(), deskZammad(), deskZendesk(), deskFreshdesk(),
		deskOsTicket(), deskJira(), deskOTRS(), deskFreeScout(),
	}}
})
