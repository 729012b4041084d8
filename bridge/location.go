package bridge

import (
	"sync"
	"time"
)

// ParisLocation is the zone of the ENT's users, Europe/Paris: the dates of
// the mails to the desk, the digests' schedules that name no zone. It is
// loaded once; UTC when the zone database lacks it (the binary embeds one
// through config's time/tzdata import).
func ParisLocation() *time.Location { return parisLocation() }

var parisLocation = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		return time.UTC
	}
	return loc
})
