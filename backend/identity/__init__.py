"""Who a face is: dlib's face-recognition network (run in torch), its aligned chip, one person's gallery."""
