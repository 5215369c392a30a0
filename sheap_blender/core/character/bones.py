"""The bones a face take turns, found by the names rigs give them (Mixamo, Ready Player Me, Character Creator,
VRoid/VRM, MetaHuman, Rigify), when the user has not chosen them.

Names are compared without case; the first listed that the armature has wins.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("neck", "head", "left_eye", "right_eye", "jaw")
USUAL_NAMES: dict[str, tuple[str, ...]] = {
    "neck": ("Neck", "CC_Base_NeckTwist01", "J_Bip_C_Neck", "mixamorig:Neck", "mixamorig_Neck", "neck_01",
             "DEF-spine.004", "Bip01 Neck", "Bip001 Neck"),
    "head": ("Head", "CC_Base_Head", "J_Bip_C_Head", "mixamorig:Head", "mixamorig_Head", "DEF-spine.006",
             "Bip01 Head", "Bip001 Head"),
    "left_eye": ("LeftEye", "Left_Eye", "CC_Base_L_Eye", "J_Adj_L_FaceEye", "mixamorig:LeftEye", "mixamorig_LeftEye",
                 "FACIAL_L_Eye", "eye.L", "eye_L", "L_eye", "Eye_L", "eyeL", "DEF-eye.L", "ORG-eye.L"),
    "right_eye": ("RightEye", "Right_Eye", "CC_Base_R_Eye", "J_Adj_R_FaceEye", "mixamorig:RightEye",
                  "mixamorig_RightEye", "FACIAL_R_Eye", "eye.R", "eye_R", "R_eye", "Eye_R", "eyeR", "DEF-eye.R",
                  "ORG-eye.R"),
    "jaw": ("jaw", "CC_Base_JawRoot", "J_Bip_C_Jaw", "FACIAL_C_Jaw", "mixamorig:Jaw", "mixamorig_Jaw", "JawRoot",
            "DEF-jaw", "ORG-jaw", "jaw_01", "Bip01 Jaw"),
}


def usual_bone(role: str, bone_names: Iterable[str]) -> str:
    """The armature's bone that usually plays `role` ('' when none has one of its usual names)."""
    by_lower: dict[str, str] = {}
    for name in bone_names:
        by_lower.setdefault(name.lower(), name)
    return next((by_lower[name.lower()] for name in USUAL_NAMES[role] if name.lower() in by_lower), "")
