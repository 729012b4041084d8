package mail

// deskGLPI is GLPI's mail, as it sends it.
func deskGLPI() *DeskProduct {
	return &DeskProduct{
		Name:       "glpi",
		SubjectTag: mustRe(`\[GLPI #(\d+)\]`),
	}
}
