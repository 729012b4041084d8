package mail

import "sync"

// KnownDeskProducts returns the catalogue of help-desk products, compiled
// once.
var KnownDeskProducts = sync.OnceValue(func() *DeskProducts {
	return &DeskProducts{list: []*DeskProduct{}}
})
