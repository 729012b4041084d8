package compose

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"

	"supportbridge/bridge"
)

// texts/<lang>.json hold every word the composed mails use, one file a
// language (bridge.Lang): the desk mails' labels, the digests' and the
// operators' alert. Translators edit them alone; TestTextsComplete checks
// that each language says everything the others do.
//
//go:embed texts/*.json
var textFiles embed.FS

// texts is one language's file.
type texts struct {
	Mail   labels       `json:"mail"`
	Digest digestLabels `json:"digest"`
	Alert  deadJobWords `json:"alert"`
}

// The catalogues, read from texts/ once.
var (
	catalogs        = map[bridge.Lang]labels{}
	digestCatalogs  = map[bridge.Lang]digestLabels{}
	deadJobCatalogs = map[bridge.Lang]deadJobWords{}
)

func init() {
	for _, lang := range []bridge.Lang{bridge.French, bridge.English} {
		t, err := readTexts(lang)
		if err != nil {
			// The files are built in: a broken one is a build defect,
			// which the package's tests catch first.
			panic(err)
		}
		catalogs[lang] = t.Mail
		t.Digest.comp = t.Mail
		digestCatalogs[lang] = t.Digest
		deadJobCatalogs[lang] = t.Alert
	}
}

// readTexts reads one language's file strictly: an unknown key is a typo.
func readTexts(lang bridge.Lang) (texts, error) {
	var t texts
	raw, err := textFiles.ReadFile("texts/" + string(lang) + ".json")
	if err != nil {
		return t, fmt.Errorf("compose texts %s: %w", lang, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("compose texts %s: %w", lang, err)
	}
	return t, nil
}
