package mail

// deskFreeScout is FreeScout's mail, as it sends it.
func deskFreeScout() *DeskProduct {
	return &DeskProduct{
		Name:       "freescout",
		SubjectTag: mustRe(`\[#(\d+)\]`),
	}
}
