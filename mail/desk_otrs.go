package mail

// deskOTRS is OTRS's mail, as it sends it.
func deskOTRS() *DeskProduct {
	return &DeskProduct{
		Name:       "otrs",
		SubjectTag: mustRe(`\[Ticket#(\d+)\]`),
	}
}
