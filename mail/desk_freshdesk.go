package mail

// deskFreshdesk is Freshdesk's mail, as it sends it.
func deskFreshdesk() *DeskProduct {
	return &DeskProduct{
		Name:       "freshdesk",
		SubjectTag: mustRe(`\[#(\d+)\]`),
	}
}
