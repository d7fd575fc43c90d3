package hub

import (
	"errors"
	"net/http"

	"github.com/leveling/workshop/room"
)

// Codes the hub adds to the domain's.
const (
	EUNAUTHORIZED = "unauthorized"
	ETOOLARGE     = "too_large"
	EMEDIATYPE    = "unsupported_media_type" // a REST body that is not application/json
)

// ErrorCodes lists every error code a client can receive, for the
// documentation check.
var ErrorCodes = []string{
	room.EINVALID, EUNAUTHORIZED, room.EFORBIDDEN, room.ENOTFOUND, room.ECONFLICT,
	ETOOLARGE, EMEDIATYPE, room.ERATELIMITED, room.EINTERNAL, room.EUNAVAILABLE,
}

// httpStatus maps error codes to HTTP statuses; the one table for both
// REST answers and logs.
var httpStatus = map[string]int{
	room.EINVALID:     http.StatusBadRequest,
	EUNAUTHORIZED:     http.StatusUnauthorized,
	room.EFORBIDDEN:   http.StatusForbidden,
	room.ENOTFOUND:    http.StatusNotFound,
	room.ECONFLICT:    http.StatusConflict,
	ETOOLARGE:         http.StatusRequestEntityTooLarge,
	EMEDIATYPE:        http.StatusUnsupportedMediaType,
	room.ERATELIMITED: http.StatusTooManyRequests,
	room.EINTERNAL:    http.StatusInternalServerError,
	room.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// errorCode is room.ErrorCode extended with the store's errors.
func errorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUnavailable):
		return room.EUNAVAILABLE
	case errors.Is(err, ErrRoomNotFound):
		return room.ENOTFOUND
	}
	return room.ErrorCode(err)
}

// errorMessage is the client-safe message of err.
func errorMessage(err error) string {
	switch {
	case errors.Is(err, ErrUnavailable):
		return "the room's store is unavailable; try again in a moment"
	case errors.Is(err, ErrRoomNotFound):
		return "room not found"
	}
	return room.ErrorMessage(err)
}

// statusOf is the HTTP status for err.
func statusOf(err error) int {
	if s, ok := httpStatus[errorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}
