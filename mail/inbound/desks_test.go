package inbound

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"supportbridge/config"
)

// deskCase is one mail of testdata/desks/<product>/cases.json.
type deskCase struct {
	File       string `json:"file"`
	Product    string `json:"product"`
	Kind       string `json:"kind"` // ack, reply, notice
	Reference  string `json:"reference"`
	DeskStatus string `json:"desk_status"`
	Text       string `json:"text"` // a .want file, or "" when no exchange
}

// TestDeskProductCorpus reads every mail of testdata/desks as the inbound
// side does, with desk.product auto and with the product named: the
// product is recognised, the mail is told apart (acknowledgement, reply,
// solved/closed notice), the product's number is found, and the text
// stored is exactly the .want file.
func TestDeskProductCorpus(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "desks", "*", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	x := NewReplyExtractor()
	for _, casesPath := range dirs {
		dir := filepath.Dir(casesPath)
		b, err := os.ReadFile(casesPath)
		if err != nil {
			t.Fatal(err)
		}
		var cases []deskCase
		if err := json.Unmarshal(b, &cases); err != nil {
			t.Fatalf("%s: %v", casesPath, err)
		}
		for _, tc := range cases {
			counts[tc.Product]++
			t.Run(filepath.Base(dir)+"/"+strings.TrimSuffix(tc.File, ".eml"), func(t *testing.T) {
				in := testParseFile(t, filepath.Join(dir, tc.File))
				for _, mode := range []string{"auto", tc.Product} {
					products, product := DeskProductFor(mode)
					opt := testClassifyOptions()
					opt.Products, opt.Product = products, product
					cls := Classify(in, opt)
					gotProduct := "generic"
					if cls.Product != nil {
						gotProduct = cls.Product.Name
					}
					if gotProduct != tc.Product {
						t.Errorf("desk.product %s: recognised as %s, want %s", mode, gotProduct, tc.Product)
					}
					wantKind := map[string]Kind{"ack": KindAutoReply, "reply": KindReply, "notice": KindDeskNotice}[tc.Kind]
					if cls.Kind != wantKind || cls.DeskStatus != tc.DeskStatus {
						t.Errorf("desk.product %s: kind %s %q (%s), want %s %q", mode, cls.Kind, cls.DeskStatus, cls.Reason, wantKind, tc.DeskStatus)
					}
					if cls.DeskReference != tc.Reference {
						t.Errorf("desk.product %s: reference %q, want %q", mode, cls.DeskReference, tc.Reference)
					}
					if tc.Kind == "ack" {
						continue
					}
					want := ""
					if tc.Text != "" {
						w, err := os.ReadFile(filepath.Join(dir, tc.Text))
						if err != nil {
							t.Fatal(err)
						}
						want = strings.TrimRight(string(w), "\n")
					}
					got := x.ExtractFor(in.Text, in.HTML, ReplyContext{Product: cls.Product, Subject: in.Subject,
						OwnAddresses: []string{"assistance@ent.example"}, KeepForwards: true, Notice: tc.Kind == "notice"})
					if got != want {
						t.Errorf("desk.product %s: text\n%s\n--- want ---\n%s", mode, got, want)
					}
				}
			})
		}
	}
	for _, p := range KnownDeskProducts().Names() {
		if counts[p] < 5 {
			t.Errorf("product %s has %d mails in testdata/desks, want at least 5", p, counts[p])
		}
	}
	t.Logf("mails per product: %v", counts)
}

// TestDeskProductNames keeps desk.product's values (config) and the
// catalogue the same.
func TestDeskProductNames(t *testing.T) {
	if got := DeskProductNames(); !slices.Equal(got, config.DeskProducts) {
		t.Errorf("catalogue %v, config %v", got, config.DeskProducts)
	}
}
