from esltag.epaper import BLACK, COLOR, WHITE, EPaper


def test_bw_image_pixels():
    panel = EPaper(16, 2)
    image = b"\x80\x01\xff\x00"
    assert panel.show(image)
    assert panel.pixel(0, 0) == BLACK and panel.pixel(1, 0) == WHITE and panel.pixel(15, 0) == BLACK
    assert all(panel.pixel(x, 1) == BLACK for x in range(8)) and panel.pixel(8, 1) == WHITE
    assert panel.refreshes == 1 and panel.shown == image


def test_bwr_colour_plane_wins():
    panel = EPaper(8, 1, planes=2)
    assert panel.show(b"\xff\x0f")
    assert panel.pixel(0, 0) == BLACK and panel.pixel(7, 0) == COLOR


def test_wrong_size_rejected():
    panel = EPaper(8, 8)
    assert not panel.show(b"\x00" * 7)
    assert panel.refreshes == 0 and panel.shown is None


def test_text_draws_black():
    panel = EPaper(64, 8)
    panel.text("88")
    assert any(panel.pixel(x, y) == BLACK for x in range(16) for y in range(8))
