package mail

// deskZendesk is Zendesk's mail, as it sends it.
func deskZendesk() *DeskProduct {
	return &DeskProduct{
		Name: "zendesk",
	}
}
