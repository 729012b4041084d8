package mail

// deskZammad is Zammad's mail, as it sends it.
func deskZammad() *DeskProduct {
	return &DeskProduct{
		Name:       "zammad",
		SubjectTag: mustRe(`\[Ticket#(\d+)\]`),
	}
}
