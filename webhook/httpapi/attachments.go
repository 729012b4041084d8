package httpapi

import (
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"supportbridge/bridge"
)

// The attachments of a new ticket or a comment: their count, unique ids,
// base64 content within the size limit, safe file names and canonical
// content types.

func (d *eventDecoder) attachments(path string, v *jvalue) []bridge.AttachmentData {
	c := d.c
	items, _ := c.array(path, v, false)
	if d.lim.MaxAttachments > 0 && len(items) > d.lim.MaxAttachments {
		c.fail(path, fmt.Sprintf("at most %d attachments", d.lim.MaxAttachments))
	}
	var out []bridge.AttachmentData
	for i, item := range items {
		ap := index(path, i)
		m := c.requiredObject(ap, item, "id", "filename", "content_type", "content_base64")
		if m == nil {
			continue
		}
		a := bridge.AttachmentData{Attachment: bridge.Attachment{
			ID:          c.id(join(ap, "id"), m["id"]),
			Filename:    c.filename(join(ap, "filename"), m["filename"]),
			ContentType: c.mediaType(join(ap, "content_type"), m["content_type"]),
		}}
		a.Content = d.content(join(ap, "content_base64"), m["content_base64"])
		a.Size = int64(len(a.Content))
		if a.ID != "" {
			if first, dup := d.attachmentIDs[a.ID]; dup {
				c.fail(join(ap, "id"), "repeats the id of "+first)
			} else {
				d.attachmentIDs[a.ID] = ap
			}
		}
		out = append(out, a)
	}
	return out
}

func (d *eventDecoder) content(path string, v *jvalue) []byte {
	s, ok := d.c.text(path, v, true)
	if !ok {
		return nil
	}
	limit := d.lim.MaxAttachmentBytes
	// Refuse before allocating when even the smallest reading of the
	// text (every byte but padding and line breaks) is over the limit.
	if limit > 0 {
		n := len(s) - strings.Count(s, "\n") - strings.Count(s, "\r")
		if int64(n)/4*3-2 > limit {
			d.c.fail(path, fmt.Sprintf("decodes to more than %d bytes", limit))
			return nil
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		d.c.fail(path, "must be standard base64")
		return nil
	}
	if limit > 0 && int64(len(b)) > limit {
		d.c.fail(path, fmt.Sprintf("decodes to more than %d bytes", limit))
		return nil
	}
	return b
}

func (c *checker) filename(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > maxFilenameChars {
		c.fail(path, fmt.Sprintf("must be 1 to %d characters", maxFilenameChars))
		return ""
	}
	safe := bridge.SafeFilename(s)
	if safe == "" {
		c.fail(path, "must be a file name, not a path")
		return ""
	}
	return safe
}

// mediaType returns the content type in its canonical form (lower-case
// type, parameters re-quoted), so that nothing odd reaches a MIME header.
func (c *checker) mediaType(path string, v *jvalue) string {
	s, ok := c.text(path, v, true)
	if !ok {
		return ""
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(mt, "/") {
		c.fail(path, "must be a media type such as image/png")
		return ""
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" {
		c.fail(path, "must be a media type such as image/png")
		return ""
	}
	return out
}

// join appends a member name to a path. Names that are not plain
