package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// readLimited reads the request body, refusing bodies over limit with 413.
func readLimited(c echo.Context, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
				"The body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes.")
		}
		return nil, badRequest("The request body could not be read.")
	}
	return b, nil
}
