package compose

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"supportbridge/bridge"
)

// TestTextsComplete holds the language files to one another: every text
// said in each language, not empty, with the same format verbs in the same
// order (a translation that drops a %s or adds one breaks a mail), every
// status and profile named.
func TestTextsComplete(t *testing.T) {
	verbs := regexp.MustCompile(`%[-+# 0]*[0-9]*[a-zA-Z%]`)
	flat := func(lang bridge.Lang) map[string]string {
		tx, err := readTexts(lang)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var walk func(path string, v reflect.Value)
		walk = func(path string, v reflect.Value) {
			switch v.Kind() {
			case reflect.String:
				out[path] = v.String()
			case reflect.Struct:
				for i := range v.NumField() {
					if f := v.Type().Field(i); f.IsExported() {
						walk(path+"."+f.Name, v.Field(i))
					}
				}
			case reflect.Array, reflect.Slice:
				for i := range v.Len() {
					walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
				}
			case reflect.Map:
				for _, k := range v.MapKeys() {
					walk(fmt.Sprintf("%s[%v]", path, k), v.MapIndex(k))
				}
			}
		}
		walk("", reflect.ValueOf(tx))
		return out
	}
	fr, en := flat(bridge.French), flat(bridge.English)
	if len(fr) < 60 {
		t.Fatalf("read %d texts in French", len(fr))
	}
	for _, pair := range [][2]map[string]string{{fr, en}, {en, fr}} {
		for path, text := range pair[0] {
			otherText, found := pair[1][path]
			if !found {
				t.Errorf("%s has no counterpart in the other language", path)
				continue
			}
			if text == "" {
				t.Errorf("%s is empty", path)
			}
			if !slices.Equal(verbs.FindAllString(text, -1), verbs.FindAllString(otherText, -1)) {
				t.Errorf("%s: format verbs %q against %q", path, text, otherText)
			}
		}
	}
	for _, lang := range []bridge.Lang{bridge.French, bridge.English} {
		l := catalogs[lang]
		for _, s := range []bridge.Status{bridge.StatusNew, bridge.StatusOpened, bridge.StatusWaiting, bridge.StatusResolved, bridge.StatusClosed} {
			if l.Statuses[s] == "" {
				t.Errorf("%s: no name for status %s", lang, s)
			}
		}
		if digestCatalogs[lang].comp.Lang != string(lang) || l.Lang != string(lang) {
			t.Errorf("%s: the file says it is %q", lang, l.Lang)
		}
	}
}
