// Package imapreader reads the desk's mailbox over IMAP (go-imap v2: IDLE or
// polling, one reader at a time under a fenced lease, checkpoints, batches)
// and hands each mail to a MessageHandler, which says where it goes.
//
// It imports bridge.
package imapreader
