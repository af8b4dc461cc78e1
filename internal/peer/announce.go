// Package peer lets clients on one LAN share their chunk caches: a client serves its cache
// read-only over HTTP in the store layout (chunks only), announces itself by UDP multicast
// (or is named on the command line), and reads through its neighbours before the mirrors.
// Peers are untrusted like any mirror: the mirror set verifies every chunk and demotes a
// peer that lies; an announcement is only a hint that adds a source.
package peer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// Announcement is what a sharing client multicasts on its LAN. It names no host: the
// receiver takes the address the datagram came from, so an announcer can only point at
// itself (never make a fleet hammer a third party).
type Announcement struct {
	// ID is random per process: a client recognises its own announcements (looped
	// back) and learns its address as the LAN sees it.
	ID string
	// Port is where the client serves its cache (HTTP).
	Port uint16
	// Image is the name of the image the client reads ("" unknown): receivers reading
	// another image ignore it.
	Image string
}

// Limits of the wire format. Announcements come from anyone on the LAN.
const (
	MaxAnnouncement = 256
	idLen           = 16
	magic           = "nowhere-peer 1"
)

// Encode returns the datagram: "nowhere-peer 1 id=HEX port=N[ image=NAME]\n".
func (a Announcement) Encode() []byte {
	s := magic + " id=" + a.ID + " port=" + strconv.Itoa(int(a.Port))
	if a.Image != "" {
		s += " image=" + a.Image
	}
	return []byte(s + "\n")
}

// ParseAnnouncement reads a datagram strictly: the fields in order, each once, nothing
// else, within MaxAnnouncement bytes.
func ParseAnnouncement(b []byte) (Announcement, error) {
	var a Announcement
	if len(b) > MaxAnnouncement {
		return a, fmt.Errorf("announcement: %d bytes, more than %d", len(b), MaxAnnouncement)
	}
	s := strings.TrimSuffix(string(b), "\n")
	rest, ok := strings.CutPrefix(s, magic+" ")
	if !ok {
		return a, errors.New("announcement: not \"" + magic + "\"")
	}
	fields := strings.Split(rest, " ")
	if len(fields) < 2 || len(fields) > 3 {
		return a, fmt.Errorf("announcement: %d fields, want id, port and an optional image", len(fields))
	}
	id, ok := strings.CutPrefix(fields[0], "id=")
	if !ok || len(id) != idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return a, fmt.Errorf("announcement: id %q is not %d lowercase hex digits", fields[0], idLen)
	}
	port, ok := strings.CutPrefix(fields[1], "port=")
	n, err := strconv.ParseUint(port, 10, 16)
	if !ok || err != nil || n == 0 || port != strconv.FormatUint(n, 10) {
		return a, fmt.Errorf("announcement: %q is not port=1..65535", fields[1])
	}
	a.ID, a.Port = id, uint16(n)
	if len(fields) == 3 {
		img, ok := strings.CutPrefix(fields[2], "image=")
		if !ok || index.ValidName(img) != nil {
			return Announcement{}, fmt.Errorf("announcement: %q is not image=NAME", fields[2])
		}
		a.Image = img
	}
	return a, nil
}
